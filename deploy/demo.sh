#!/usr/bin/env bash
# deploy/demo.sh - the demo tenant of `make run`, signed for real.
#
#   demo.sh trust   two Ed25519 signer keys (govctl keygen) and the trust file of
#                   gov-constitution: both signers, threshold 2, for tenants "demo"
#                   and "bench" only (bench/run.sh publishes for bench); neither
#                   takes a document that names no tenant; and one rule-pack
#                   operator key with the rule-pack trust of gov-rulepacks and
#                   gov-edge (threshold 1, the same two tenants); run before the
#                   services start
#   demo.sh load    a SomaBrain-shaped constitution for tenant "demo", signed by both
#                   signers (govctl sign), served by a real nginx on 127.0.0.1:8790 as
#                   /bundles/demo.json; one gov-somabrain-sync pass publishes it,
#                   gov-constitution verifies it, gov-edge serves it
#   demo.sh show    the live demo against the running stack (make run's last step,
#                   `make demo`): registers a fresh client with the scope
#                   sessions:start (signed as the identity operator), gets it a
#                   token, starts one session that is allowed and one that is denied
#                   (a destructive shell command), then calls the protected upstream
#                   through the nginx gateway with the session token - printing each
#                   answer's status and X-Policy-* / X-Constitution-Hash headers.
#                   Nothing is kept: the client's secret lives in this process only.
#   demo.sh stop    stops the bundle server
#
# stack.sh calls it with var/stack.env in the environment. Everything lives under
# $GOV_VAR_DIR/demo; private keys are 0600 and never leave that folder.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
VAR="$(realpath -m "${GOV_VAR_DIR:-$ROOT/var}")"
DEMO="$VAR/demo"
BIN="$(realpath -m "${GOV_BIN_DIR:-$ROOT/build/release/bin}")"
GOVCTL="$BIN/govctl"
PORT="${GOV_BUNDLE_SERVER_PORT:-8790}"
TRUST="${GOV_TRUST_FILE:-$DEMO/trust.json}"
RULEPACK_TRUST="${GOV_RULEPACK_TRUST_FILE:-$DEMO/rulepack-trust.json}"
NGINX_CONF="$DEMO/bundle-nginx.conf"
NGINX_PID="$VAR/run/bundle-nginx.pid"
SIGNERS=(human_operator somabrain_root)
# The demo's rule-pack operator: signs the demo and bench packs.
PACK_SIGNER=pack_operator
# The tenants the demo signers are trusted for (docs/runbooks/security.md).
TRUST_TENANTS=(demo bench)

say()  { printf '==> %s\n' "$*"; }
die()  { printf 'demo.sh: error: %s\n' "$*" >&2; exit 1; }

json_escape_file() { # prints the file as a JSON string body (PEM: only newlines need it)
  awk 'BEGIN { ORS = "" } { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); print $0 "\\n" }' "$1"
}

# write_trust FILE THRESHOLD EXTRA SIGNER...: makes the signers' keys (once; kept)
# and writes FILE binding all of them, with THRESHOLD (and EXTRA members), to each of
# TRUST_TENANTS (the trust-file format of docs/contracts.md).
write_trust() {
  local file=$1 threshold=$2 extra=$3 s t ids first=1
  shift 3
  [[ -x $GOVCTL ]] || die "$GOVCTL is not built (make release)"
  mkdir -p "$DEMO/keys"
  chmod 700 "$DEMO/keys"
  for s in "$@"; do
    [[ -s "$DEMO/keys/$s.key" ]] || "$GOVCTL" keygen --signer "$s" --out "$DEMO/keys" >/dev/null
  done
  ids="$(printf '"%s", ' "$@")"
  ids="[${ids%, }]"
  {
    printf '{"signers": {'
    for s in "$@"; do
      [[ $first -eq 1 ]] || printf ', '
      first=0
      printf '"%s": "%s"' "$s" "$(json_escape_file "$DEMO/keys/$s.pub")"
    done
    printf '},\n "tenants": {'
    first=1
    for t in "${TRUST_TENANTS[@]}"; do
      [[ $first -eq 1 ]] || printf ','
      first=0
      printf '\n  "%s": {"threshold": %s, "signers": %s%s}' "$t" "$threshold" "$ids" "$extra"
    done
    printf '}}\n'
  } >"$file.tmp"
  mv -f "$file.tmp" "$file"
}

cmd_trust() {
  # The rule-pack trust: the demo pack operator's key, threshold 1, for the demo
  # tenants (docs/contracts.md "Signed rule packs").
  if [[ ! -s $RULEPACK_TRUST ]]; then
    say "demo rule-pack trust: signer $PACK_SIGNER, threshold 1, tenants ${TRUST_TENANTS[*]} -> $RULEPACK_TRUST"
    write_trust "$RULEPACK_TRUST" 1 "" "$PACK_SIGNER"
  fi
  # A trust file this script wrote before tenants were bound (the older
  # {"threshold", "signers"} form) is rewritten; the keys are kept.
  if [[ -s $TRUST ]] && { [[ $TRUST != "$DEMO/"* ]] || grep -q '"tenants"' "$TRUST"; }; then
    return 0
  fi
  say "demo trust: signers ${SIGNERS[*]}, threshold 2, tenants ${TRUST_TENANTS[*]} -> $TRUST"
  write_trust "$TRUST" 2 ', "unbound_documents": false' "${SIGNERS[@]}"
}

write_nginx_conf() {
  mkdir -p "$DEMO/somabrain/bundles" "$DEMO/nginx-tmp" "$VAR/run" "$VAR/log"
  cat >"$NGINX_CONF" <<EOF
# The local bundle server of the demo: real nginx serving really signed bundles.
worker_processes 1;
pid $NGINX_PID;
error_log $VAR/log/bundle-nginx.log warn;
events { worker_connections 64; }
http {
    access_log $VAR/log/bundle-nginx.access.log;
    client_body_temp_path $DEMO/nginx-tmp/body;
    proxy_temp_path $DEMO/nginx-tmp/proxy;
    fastcgi_temp_path $DEMO/nginx-tmp/fastcgi;
    uwsgi_temp_path $DEMO/nginx-tmp/uwsgi;
    scgi_temp_path $DEMO/nginx-tmp/scgi;
    types { application/json json; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$PORT;
        root $DEMO/somabrain;
        location /bundles/ { etag on; }
    }
}
EOF
}

bundle_server_up() {
  [[ -s $NGINX_PID ]] && kill -0 "$(cat "$NGINX_PID")" 2>/dev/null
}

start_bundle_server() {
  if bundle_server_up; then
    return 0
  fi
  command -v nginx >/dev/null || die "nginx is not installed (make deps)"
  write_nginx_conf
  say "starting the bundle server (nginx) on 127.0.0.1:$PORT"
  # fd 9 is stack.sh's lock: a daemon must not inherit it, or the lock lives
  # as long as the daemon does.
  nginx -c "$NGINX_CONF" -p "$DEMO" -e "$VAR/log/bundle-nginx.log" 9>&-
  local i
  for i in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
    sleep 0.1
  done
  die "the bundle server did not start; see $VAR/log/bundle-nginx.log"
}

write_bundle() {
  local out="$DEMO/somabrain/bundles/demo.json" tmp="$DEMO/demo-bundle.json"
  if [[ -s $out ]]; then
    return 0
  fi
  cat >"$tmp" <<'EOF'
{
  "tenant": "demo",
  "canonicalization": "somabrain-json",
  "hash_alg": "sha3-512",
  "signatures": [],
  "document": {
    "version": "1.0.0",
    "tenant": "demo",
    "title": "Demo constitution for AI agents",
    "principles": [
      "Agents act for their users and say what they are.",
      "No action that exfiltrates data or disables oversight.",
      "Risky requests go to a human before they run."
    ],
    "rules": {
      "prohibited_actions": ["exfiltrate_data", "disable_audit", "delete_backups"],
      "permitted_tool_categories": ["search", "calculator", "calendar", "email"],
      "max_risk_score": 0.8,
      "require_human_approval_above_risk": 0.5
    },
    "governance": {
      "signature_threshold": 2,
      "valid_signers": ["human_operator", "somabrain_root"]
    }
  }
}
EOF
  local s
  for s in "${SIGNERS[@]}"; do
    "$GOVCTL" sign --signer "$s" --key "$DEMO/keys/$s.key" "$tmp" >/dev/null
  done
  "$GOVCTL" verify --trust "$TRUST" "$tmp" >/dev/null || die "the demo bundle does not verify"
  chmod 644 "$tmp"
  mv -f "$tmp" "$out"
  say "demo constitution signed by ${SIGNERS[*]}: $out"
}

# The demo tenant's rule pack (deploy/demo/rulepack-demo.json): validated, signed by
# the demo pack operator (detached, into var/demo) and published with govctl, then
# waited for until gov-rulepacks has materialized it. Publishing the same file again
# is a replay that gov-rulepacks recognises and ignores.
publish_rulepack() {
  local pack="$SCRIPT_DIR/demo/rulepack-demo.json" key='policy:rulepack:{demo}:meta'
  local sigs="$DEMO/rulepack-demo.sig" summary version current="" i
  if [[ ! -x $BIN/gov-rulepacks ]]; then
    say "demo: gov-rulepacks not built, demo rule pack not published"
    return 0
  fi
  summary="$("$GOVCTL" rulepack validate "$pack")" || die "the demo rule pack does not validate: $pack"
  version="$(sed -n 's/^OK .* version=\([^ ]*\) .*/\1/p' <<<"$summary")"
  "$GOVCTL" rulepack sign --signer "$PACK_SIGNER" --key "$DEMO/keys/$PACK_SIGNER.key" \
    --sigs "$sigs" "$pack" >/dev/null || die "govctl rulepack sign failed"
  say "publishing the demo rule pack (${summary#OK }), signed by $PACK_SIGNER"
  "$GOVCTL" rulepack publish --sigs "$sigs" "$pack" >/dev/null || die "govctl rulepack publish failed"
  for i in $(seq 1 100); do
    current="$(redis-cli -h "${GOV_REDIS_HOST:-127.0.0.1}" -p "${GOV_REDIS_PORT:-6390}" \
      HGET "$key" version 2>/dev/null || true)"
    if [[ $current == "$version" ]]; then
      say "demo rule pack $version is current: redis-cli -p ${GOV_REDIS_PORT:-6390} GET 'policy:rulepack:{demo}'"
      return 0
    fi
    sleep 0.1
  done
  [[ -n $current ]] || die "gov-rulepacks did not materialize the demo rule pack; see var/log/gov-rulepacks.log"
  say "demo: rule pack $current stays current (a later version than the demo's $version was published)"
}

cmd_load() {
  for b in govctl gov-somabrain-sync; do
    [[ -x $BIN/$b ]] || { say "demo: $b not built, demo tenant not loaded"; return 0; }
  done
  cmd_trust
  start_bundle_server
  write_bundle
  say "publishing the demo constitution (gov-somabrain-sync --once)"
  "$BIN/gov-somabrain-sync" --once --log_level=warn || die "gov-somabrain-sync --once failed"
  local url="${GOV_EDGE_URL:-http://127.0.0.1:8700}/v1/constitution/demo" i
  if [[ -x $BIN/gov-edge ]]; then
    for i in $(seq 1 300); do
      if [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/hash") == 200 ]]; then
        say "demo tenant is served: curl $url"
        publish_rulepack
        return 0
      fi
      sleep 0.1
    done
    die "gov-edge does not serve the demo constitution ($url); see var/log/gov-constitution.log"
  fi
  publish_rulepack
}

# --- the live demo (demo.sh show) --------------------------------------------------

# Prints "status" and the decision headers of a curl -i answer on stdin.
print_answer() {
  local what=$1 head status
  head="$(sed '/^\r*$/q')"
  status="$(sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' <<<"$head")"
  printf '    %-34s HTTP %s\n' "$what" "${status:-none}"
  grep -i '^\(x-policy-[a-z-]*\|x-constitution-hash\):' <<<"$head" | tr -d '\r' | sed 's/^/      /' || true
}

# The value of a top-level string member of a one-line JSON object (our own
# answers: ids, tokens and secrets are base64url or UUIDs, no escapes).
json_str() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

cmd_show() {
  [[ -x $GOVCTL ]] || die "govctl is not built (make release)"
  local edge="${GOV_EDGE_URL:-http://127.0.0.1:8700}" gw="${GOV_GATEWAY_URL:-}" out id secret tok ans i
  local body_ok='{"tenant":"demo","session_id":"demo-1","user":"alice","role":"analyst","prompt":"summarize the quarterly report"}'
  local body_deny='{"tenant":"demo","session_id":"demo-2","user":"mallory","role":"analyst","prompt":"now run rm -rf / on the build host"}'
  say "live demo (deploy/demo.sh show; again: make demo)"
  out="$("$GOVCTL" clients add --tenants demo --scopes "sessions:start" 2>&1)" \
    || die "govctl clients add failed: $out"
  id="$(json_str client_id <<<"$out")"; secret="$(json_str client_secret <<<"$out")"
  [[ -n $id && -n $secret ]] || die "govctl clients add printed no client: $out"
  printf '    client %s registered (scope sessions:start; its secret is not kept)\n' "$id"
  # gov-identity materializes the registration: issuance answers 401 until then
  for i in $(seq 1 100); do
    ans="$(curl -s -u "$id:$secret" "$edge/v1/tokens/issue" -d grant_type=client_credentials)"
    tok="$(json_str access_token <<<"$ans")"
    [[ -n $tok ]] && break
    sleep 0.1
  done
  [[ -n $tok ]] || die "no token for the demo client: $ans"
  printf '    bearer token issued (EdDSA; TokenIssued and AuditEvent acknowledged first)\n'
  ans="$(curl -si "$edge/v1/sessions/start" -H "Authorization: Bearer $tok" \
           -H 'Content-Type: application/json' -d "$body_ok")"
  print_answer "session (summarize a report)" <<<"$ans"
  local session_tok; session_tok="$(sed '1,/^\r*$/d' <<<"$ans" | json_str token)"
  ans="$(curl -si "$edge/v1/sessions/start" -H "Authorization: Bearer $tok" \
           -H 'Content-Type: application/json' -d "$body_deny")"
  print_answer "session (rm -rf / on a host)" <<<"$ans"
  if [[ -n $gw && -n $session_tok ]]; then
    ans="$(curl -si "$gw/api/reports/q3" -H "Authorization: Bearer $session_tok")"
    print_answer "gateway GET /api/reports/q3" <<<"$ans"
    ans="$(curl -si "$gw/api/reports/q3" -H "Authorization: Bearer $session_tok" \
             -H 'X-Policy-Decision: allow')"
    print_answer "gateway, spoofed X-Policy-Decision" <<<"$ans"
    ans="$(curl -si "$gw/api/reports/q3")"
    print_answer "gateway, no token" <<<"$ans"
  fi
  say "the audit chain holds every step: govctl audit verify --tenant demo"
}

cmd_stop() {
  if bundle_server_up; then
    say "stopping the bundle server (nginx)"
    nginx -c "$NGINX_CONF" -p "$DEMO" -e "$VAR/log/bundle-nginx.log" -s quit 2>/dev/null ||
      kill "$(cat "$NGINX_PID")" 2>/dev/null || true
  fi
}

case "${1:-}" in
  trust) cmd_trust ;;
  load) cmd_load ;;
  show) cmd_show ;;
  stop) cmd_stop ;;
  *) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
