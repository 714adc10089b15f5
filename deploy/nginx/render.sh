#!/usr/bin/env bash
# deploy/nginx/render.sh - writes an nginx gateway configuration from
# deploy/nginx/gateway.conf.in, and makes its prefix directory.
#
#   bash deploy/nginx/render.sh PREFIX LISTEN EDGE UPSTREAM [AUTHZ_TIMEOUT [CONNECT_TIMEOUT]]
#
#   PREFIX    directory for nginx.conf, nginx.pid, the logs and temp files
#   LISTEN    host:port the gateway listens on
#   EDGE      host:port of gov-edge (its /v1/authz and its own API)
#   UPSTREAM  host:port of the protected upstream
#   AUTHZ_TIMEOUT    send/read timeout of the check (default 2s)
#   CONNECT_TIMEOUT  connect timeout to gov-edge (default 1s)
#
# GOV_GATEWAY_CREDENTIAL_FILE (optional): a file holding the gateway credential
# (one line, 32-256 bytes of [A-Za-z0-9._~+/=-]) that gov-edge requires of
# /v1/authz (its authz_gateway_credential_file, the same file). It is written
# to PREFIX/gateway-credential.conf (0600), which the check location includes;
# the value is never in the repository nor in nginx.conf. Unset: the check
# sends the header empty (an edge without a credential ignores it).
#
# Per client address (an IPv6 client by its /64) on /v1/tokens/ and /v1/sessions/
# (limit_req, limit_conn):
#   GOV_GATEWAY_ISSUE_RATE   requests per second, an nginx rate (default 50r/s)
#   GOV_GATEWAY_ISSUE_BURST  requests above the rate taken at once (default 100)
#   GOV_GATEWAY_ISSUE_CONN   requests in flight at once (default 64)
# Per client address on location / (the checks), apart for requests without
# and with a bearer token (REVIEW12 M2):
#   GOV_GATEWAY_ANON_RATE, _ANON_BURST, _ANON_CONN     (default 20r/s, 40, 32)
#   GOV_GATEWAY_CHECK_RATE, _CHECK_BURST, _CHECK_CONN  (default 500r/s, 1000, 32;
#   keep _CHECK_CONN below gov-edge's policy_lookup_queue, default 64)
#
# Prints the path of the configuration written (PREFIX/nginx.conf). Run it:
#   nginx -p PREFIX -c PREFIX/nginx.conf -e PREFIX/error.log -g 'daemon off; master_process off;'
set -euo pipefail
[[ $# -ge 4 ]] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
prefix=$1 listen=$2 edge=$3 upstream=$4 timeout=${5:-2s} connect=${6:-1s}
for v in "$listen" "$edge" "$upstream"; do
  [[ $v =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || { echo "render.sh: $v is not host:port" >&2; exit 2; }
done
for v in "$timeout" "$connect"; do
  [[ $v =~ ^[0-9]+(ms|s)$ ]] || { echo "render.sh: $v is not an nginx time (e.g. 2s, 500ms)" >&2; exit 2; }
done
rate=${GOV_GATEWAY_ISSUE_RATE:-50r/s} burst=${GOV_GATEWAY_ISSUE_BURST:-100} conns=${GOV_GATEWAY_ISSUE_CONN:-64}
anon_rate=${GOV_GATEWAY_ANON_RATE:-20r/s} anon_burst=${GOV_GATEWAY_ANON_BURST:-40} anon_conns=${GOV_GATEWAY_ANON_CONN:-32}
check_rate=${GOV_GATEWAY_CHECK_RATE:-500r/s} check_burst=${GOV_GATEWAY_CHECK_BURST:-1000} check_conns=${GOV_GATEWAY_CHECK_CONN:-32}
for v in "$rate" "$anon_rate" "$check_rate"; do
  [[ $v =~ ^[1-9][0-9]{0,6}r/(s|m)$ ]] || { echo "render.sh: $v is not an nginx rate (e.g. 50r/s; GOV_GATEWAY_*_RATE)" >&2; exit 2; }
done
for v in "$burst" "$conns" "$anon_burst" "$anon_conns" "$check_burst" "$check_conns"; do
  [[ $v =~ ^[1-9][0-9]{0,6}$ ]] || { echo "render.sh: $v is not a positive count (GOV_GATEWAY_*_BURST, _CONN)" >&2; exit 2; }
done
[[ $prefix == /* && $prefix != *[[:space:]\;\'\"]* ]] \
  || { echo "render.sh: PREFIX must be an absolute path without spaces or quotes" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$prefix/tmp"
credential=""
if [[ -n ${GOV_GATEWAY_CREDENTIAL_FILE:-} ]]; then
  credential="$(head -c 300 "$GOV_GATEWAY_CREDENTIAL_FILE")" \
    || { echo "render.sh: cannot read GOV_GATEWAY_CREDENTIAL_FILE" >&2; exit 2; }
  [[ $credential =~ ^[A-Za-z0-9._~+/=-]{32,256}$ ]] \
    || { echo "render.sh: GOV_GATEWAY_CREDENTIAL_FILE must hold one line of 32-256 bytes of [A-Za-z0-9._~+/=-]" >&2; exit 2; }
fi
( umask 077
  printf '# written by deploy/nginx/render.sh: the gateway credential of /v1/authz\nproxy_set_header X-Gov-Gateway-Credential "%s";\n' \
    "$credential" >"$prefix/gateway-credential.conf.tmp" )
mv -f "$prefix/gateway-credential.conf.tmp" "$prefix/gateway-credential.conf"
tmp="$prefix/nginx.conf.tmp"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LISTEN@|$listen|g" -e "s|@EDGE@|$edge|g" \
    -e "s|@UPSTREAM@|$upstream|g" -e "s|@AUTHZ_TIMEOUT@|$timeout|g" \
    -e "s|@AUTHZ_CONNECT_TIMEOUT@|$connect|g" -e "s|@ISSUE_RATE@|$rate|g" \
    -e "s|@ISSUE_BURST@|$burst|g" -e "s|@ISSUE_CONN@|$conns|g" \
    -e "s|@ANON_RATE@|$anon_rate|g" -e "s|@ANON_BURST@|$anon_burst|g" -e "s|@ANON_CONN@|$anon_conns|g" \
    -e "s|@CHECK_RATE@|$check_rate|g" -e "s|@CHECK_BURST@|$check_burst|g" \
    -e "s|@CHECK_CONN@|$check_conns|g" "$here/gateway.conf.in" >"$tmp"
if grep -q '@[A-Z_]*@' "$tmp"; then
  echo "render.sh: unfilled placeholders: $(grep -o '@[A-Z_]*@' "$tmp" | sort -u | tr '\n' ' ')" >&2
  exit 1
fi
mv -f "$tmp" "$prefix/nginx.conf"
printf '%s\n' "$prefix/nginx.conf"
