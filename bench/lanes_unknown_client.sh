#!/bin/bash
# bench/lanes_unknown_client.sh - CPU of gov-edge for N issuances with one
# unknown client id (REVIEW11 L4: the absent-client cache), this build against
# another gov-edge binary (BASE_EDGE, e.g. one built from main), each started
# over the running stack (var/stack.env) on its own port.  Not part of make
# bench: a side-by-side ratio on a shared machine.
#   BASE_EDGE=/tmp/main/build/release/bin/gov-edge N=5000 bash bench/lanes_unknown_client.sh
cd "$(dirname "$0")/.."
set -a; . var/stack.env; set +a
N=${N:-2000}
run() { # bin port label
  GOV_PORT=$2 GOV_EDGE_ID=measure-$3 GOV_KAFKA_BROKERS=$GOV_KAFKA_BROKERS $1 > var/bench-edge-$3.log 2>&1 &
  local pid=$!
  for i in $(seq 100); do curl -sf http://127.0.0.1:$2/healthz >/dev/null && break; sleep 0.2; done
  sleep 2
  python3 - "$2" "$pid" "$N" "$3" <<'PY'
import sys, http.client, base64, os
port, pid, n, label = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")",1)[1].split()
    return (int(f[11]) + int(f[12])) * 1000 // os.sysconf("SC_CLK_TCK")
auth = "Basic " + base64.b64encode(b"measure-unknown-client:nope").decode()
c0 = cpu(); codes = {}
conn = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    conn.request("POST", "/v1/tokens/issue", "grant_type=client_credentials",
                 {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse(); r.read(); codes[r.status] = codes.get(r.status, 0) + 1
c1 = cpu()
m = http.client.HTTPConnection("127.0.0.1", port); m.request("GET", "/metrics")
lk = [l for l in m.getresponse().read().decode().splitlines() if l.startswith('edge_lookups_total{route="token_issue"')]
print(f"{label}: {n} issuances, one unknown id: edge CPU {c1-c0} ms, answers {codes}, {lk or 'no edge_lookups_total'}")
PY
  kill $pid; wait $pid 2>/dev/null
}
[ -n "${BASE_EDGE:-}" ] && run "$BASE_EDGE" $((GOV_PORT_OFFSET + 9051)) base
run build/release/bin/gov-edge $((GOV_PORT_OFFSET + 9052)) this
