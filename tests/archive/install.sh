#!/usr/bin/env bash
# tests/archive/install.sh - makes the Python virtual environment test_archive reads segments
# with (fastavro, pinned by requirements.txt: an Avro implementation independent of avro-c and
# of our reader) in a cache outside the repository:
# ${GOV_ARCHIVE_VENV:-$HOME/.cache/soma-gov/fastavro-venv}. Cheap when the cache already holds
# exactly the pinned set. Needs python3 with the venv module (Debian: python3-venv,
# deploy/install-deps.sh) and PyPI. Prints the environment's directory.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${GOV_ARCHIVE_VENV:-${HOME:-/root}/.cache/soma-gov/fastavro-venv}"
command -v python3 >/dev/null 2>&1 || { echo "tests/archive/install.sh: python3 not found" >&2; exit 1; }
mark="$(python3 -V 2>&1) $(sha256sum "$HERE/requirements.txt" | cut -c1-64)"
if [[ ! -x $CACHE/bin/python ]] || [[ "$(cat "$CACHE/.soma-gov-installed" 2>/dev/null)" != "$mark" ]]; then
  rm -rf "$CACHE"
  mkdir -p "$(dirname "$CACHE")"
  python3 -m venv "$CACHE" >&2
  "$CACHE/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$HERE/requirements.txt" >&2
  printf '%s\n' "$mark" >"$CACHE/.soma-gov-installed"
fi
printf '%s\n' "$CACHE"
