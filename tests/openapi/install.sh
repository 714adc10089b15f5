#!/usr/bin/env bash
# tests/openapi/install.sh - makes the Python virtual environment of the openapi stage
# (openapi-spec-validator and Schemathesis, every package pinned by requirements.txt) in a
# cache outside the repository: ${GOV_OPENAPI_CACHE:-$HOME/.cache/soma-gov/openapi-venv}.
# Cheap when the cache already holds exactly the pinned set (a copy of requirements.txt and
# the interpreter's version mark it). Needs python3 with the venv module (Debian:
# python3-venv, deploy/install-deps.sh) and PyPI. Prints the environment's directory.
# Python runs only here, in the tests, as an independent client of our formats and APIs.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${GOV_OPENAPI_CACHE:-${HOME:-/root}/.cache/soma-gov/openapi-venv}"
PY="${GOV_OPENAPI_PYTHON:-python3}"
command -v "$PY" >/dev/null 2>&1 || { echo "tests/openapi/install.sh: $PY not found (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
# Debian 12's python3 (3.11.2) runs the stage; GOV_OPENAPI_PYTHON may name another.
# (CPython before 3.11.5 can crash inside Hypothesis with "AST constructor recursion depth
# mismatch", gh-106905, but only while reporting a schema it cannot generate from: a
# description error, which the spec validator and the run's own errors point at.)
mark="$("$PY" -V 2>&1) $(sha256sum "$HERE/requirements.txt" | cut -c1-64)"
if [[ ! -x $CACHE/bin/schemathesis || ! -x $CACHE/bin/openapi-spec-validator ]] \
   || [[ "$(cat "$CACHE/.soma-gov-installed" 2>/dev/null)" != "$mark" ]]; then
  rm -rf "$CACHE"
  mkdir -p "$(dirname "$CACHE")"
  "$PY" -m venv "$CACHE" >&2
  # --no-deps: the pinned list is the whole set; nothing is resolved anew.
  "$CACHE/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    -r "$HERE/requirements.txt" >&2
  printf '%s\n' "$mark" >"$CACHE/.soma-gov-installed"
fi
printf '%s\n' "$CACHE"
