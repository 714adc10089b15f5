#!/usr/bin/env bash
# tests/stack/demo.sh - `make demo` (deploy/demo.sh show) against the suite's
# stack says what the demo promises: the allowed session is 201 with its
# decision headers, the destructive prompt 403 deny, the gateway passes the
# session token's request (200 allow), replaces a spoofed X-Policy-Decision,
# and refuses a request without a token (401 deny).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
set -a; . var/stack.env; set +a
out="$(bash deploy/demo.sh show 2>&1)" || { echo "$out"; echo "deploy/demo.sh show failed" >&2; exit 1; }
echo "$out"
expect() {
  # the answer line and the X-Policy-Decision right below it
  local what=$1 status=$2 decision=$3
  awk -v w="$what" -v s="HTTP $status" -v d="X-Policy-Decision: $decision" '
    index($0, w) && index($0, s) { found = 1; next }
    found && /X-Policy-Decision:/ { exit index($0, d) ? 0 : 1 }
    END { if (!found) exit 1 }' <<<"$out" \
    || { echo "expected '$what' -> HTTP $status, X-Policy-Decision: $decision" >&2; exit 1; }
}
expect "session (summarize a report)" 201 allow
expect "session (rm -rf / on a host)" 403 deny
if [[ -n ${GOV_GATEWAY_URL:-} ]]; then
  expect "gateway GET /api/reports/q3" 200 allow
  expect "gateway, spoofed X-Policy-Decision" 200 allow
  expect "gateway, no token" 401 deny
else
  echo "the stack has no gateway (nginx missing?)" >&2; exit 1
fi
echo "demo ok"
