#!/usr/bin/env bash
# tests/interop/install.sh - installs the test-only npm packages of tests/interop (jose,
# openid-client; pinned by package.json and package-lock.json) into a cache outside the
# repository: ${GOV_INTEROP_CACHE:-$HOME/.cache/soma-gov/interop-node}/node_modules.
# `make deps` runs it; it is cheap when the cache already holds exactly the locked set.
# Needs node and npm (Debian's nodejs and npm, deploy/install-deps.sh). Prints the cache
# directory on stdout. The integration test test_token_interop copies token_interop.mjs
# next to a node_modules link to it (ES modules resolve packages from the script's folder).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${GOV_INTEROP_CACHE:-${HOME:-/root}/.cache/soma-gov/interop-node}"
command -v npm >/dev/null 2>&1 || { echo "tests/interop/install.sh: npm not found (Debian: apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$CACHE"
if ! cmp -s "$HERE/package-lock.json" "$CACHE/package-lock.json" || [[ ! -d $CACHE/node_modules/jose ]] \
   || [[ ! -d $CACHE/node_modules/openid-client ]]; then
  cp "$HERE/package.json" "$HERE/package-lock.json" "$CACHE/"
  # --ignore-scripts: nothing the packages ship runs at install time.
  ( cd "$CACHE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error ) >&2
fi
printf '%s\n' "$CACHE"
