#!/usr/bin/env bash
# tests/compose/check.sh - checks docker-compose.yml with Docker Compose itself.
#
#   bash tests/compose/check.sh            build Compose once (cached), then check
#   bash tests/compose/check.sh --build    only build (or find) Compose; say where it is
#
# What it checks (tests/run.sh counts the build as one check and these as one more;
# the first that fails stops it, naming what is wrong):
#   1. `docker-compose config -q` accepts the file: the Compose Specification as
#      Docker Compose v5 reads it (no Docker engine needed for `config`).
#   2. Every binary the Makefile builds (`make -s print-bins`, not a hand list)
#      is the command of a service in the resolved file (`config --format json`),
#      with every profile enabled: a binary that joins processors/ and not the
#      compose file fails here.
#   3. The same topology as deploy/stack.sh, read from stack.sh: each of its
#      SERVICES runs with its admin port published on loopback, the kafka-topics
#      service creates its TOPICS and sets its TOPIC_CONFIGS, Kafka, Redis, the
#      gateway and the bundle server publish its default ports.
#   4. The nginx gateway service renders deploy/nginx/gateway.conf.in and stands in
#      front of the edge (depends on it).
#   5. deploy/Dockerfile (no engine to build it): its runtime stage installs the
#      Debian package of every shared library the release binaries link, and it
#      copies every release binary.
#
# How Compose is built: github.com/docker/compose/v5 at COMPOSE_VERSION from the
# Go module proxy with the Go toolchain at /usr/local/go (as bench/run.sh builds
# OPA), into ${GOV_COMPOSE_CACHE:-$HOME/.cache/soma-gov/compose-<version>} - its own
# GOPATH, GOMODCACHE and GOCACHE, never the repository. A binary already there that
# reports the version is reused (the second run does no build). The build runs
# unattended (no stdin, CI=true is fine) and prints a progress line every 20 s.
# Debian's docker-compose 1.29 is not used: it predates the Compose Specification.
#
# It does not start anything: no engine, no image build, no container.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
COMPOSE_VERSION=v5.6.0
COMPOSE_MODULE=github.com/docker/compose/v5
CACHE="${GOV_COMPOSE_CACHE:-${HOME:-/root}/.cache/soma-gov/compose-$COMPOSE_VERSION}"
COMPOSE="$CACHE/bin/docker-compose"
GO="${GOV_GO:-/usr/local/go/bin/go}"
COMPOSE_FILE="$ROOT/docker-compose.yml"
BUILD_TIMEOUT=1800

say() { printf '==> %s\n' "$*"; }
die() { printf 'tests/compose/check.sh: %s\n' "$*" >&2; exit 1; }

compose_is_built() {
  [[ -x $COMPOSE ]] && "$COMPOSE" version --short 2>/dev/null | grep -qx "${COMPOSE_VERSION#v}"
}

# Builds Compose into CACHE unless a binary of COMPOSE_VERSION is there. One
# build at a time (flock on the cache); a second caller waits, then reuses it.
build_compose() {
  compose_is_built && return 0
  [[ -x $GO ]] || die "Go is not installed at $GO (needed once to build Docker Compose $COMPOSE_VERSION; set GOV_GO)"
  mkdir -p "$CACHE/bin"
  exec 8>"$CACHE/build.lock"
  flock -w "$BUILD_TIMEOUT" 8 || die "another build holds $CACHE/build.lock"
  compose_is_built && { exec 8>&-; return 0; }
  say "building Docker Compose $COMPOSE_VERSION with $("$GO" version | cut -d' ' -f3) (once; cached in $CACHE; a few minutes)"
  local log="$CACHE/build.log" pid started=$SECONDS
  # Compose's go.mod has exclude directives, which `go install module@version`
  # refuses: so download the module, copy it out of the module cache and build
  # it in place with the flags of Compose's own Makefile (-X internal.Version,
  # which `docker-compose version` reports).
  ( set -e
    export GOPATH="$CACHE/gopath" GOMODCACHE="$CACHE/gomodcache" GOCACHE="$CACHE/gocache" \
           GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-modcacherw ${GOV_COMPOSE_GOFLAGS:-}"
    cd "$CACHE"
    dir="$("$GO" mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -d $dir ]] || { echo "go mod download gave no module directory" >&2; exit 1; }
    rm -rf src && cp -r "$dir" src && chmod -R u+w src && cd src
    timeout "$BUILD_TIMEOUT" "$GO" build -v -trimpath \
      -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
      -o "$COMPOSE.tmp" ./cmd ) >"$log" 2>&1 </dev/null &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    # wait up to 20 s for the build, then say how far it got (go build -v
    # prints each package it compiles)
    local i; for (( i = 0; i < 200; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && say "  still building ($(( SECONDS - started )) s, $(grep -vc '^go: ' "$log") packages so far)"
  done
  if ! wait "$pid"; then
    tail -n 20 "$log" >&2
    die "building Docker Compose failed (log: $log)"
  fi
  mv -f "$COMPOSE.tmp" "$COMPOSE"
  compose_is_built || die "$COMPOSE does not report version ${COMPOSE_VERSION#v}: $("$COMPOSE" version 2>&1 | head -n1)"
  say "built $COMPOSE in $(( SECONDS - started )) s"
  exec 8>&-
}

# docker-compose with the repository's file and no engine, no user config.
compose() {
  GOV_GATEWAY_UPSTREAM="${GOV_GATEWAY_UPSTREAM:-app:8080}" DOCKER_CONFIG="$CACHE/docker-config" COMPOSE_PROFILES='*' \
    "$COMPOSE" --project-directory "$ROOT" -f "$COMPOSE_FILE" "$@" </dev/null
}

check_config() {
  say "docker-compose config -q ($COMPOSE_FILE)"
  compose config -q || die "docker-compose config rejected $COMPOSE_FILE"
}

# Every binary of the Makefile is the command (or entrypoint) of a service.
check_binaries() {
  local bins json missing
  bins="$(make -s -C "$ROOT" --no-print-directory print-bins)" || die "make print-bins failed"
  [[ -n $bins ]] || die "make print-bins named no binary"
  json="$(compose config --format json)" || die "docker-compose config --format json failed"
  missing="$(COMPOSE_JSON="$json" python3 -c '
import json, os, sys
doc = json.loads(os.environ["COMPOSE_JSON"])
used = set()
for svc in doc.get("services", {}).values():
    for key in ("command", "entrypoint"):
        v = svc.get(key) or []
        if isinstance(v, str):
            v = v.split()
        if v:
            used.add(v[0].rsplit("/", 1)[-1])
print(" ".join(b for b in sys.argv[1].split() if b not in used))
' "$bins")" || die "reading the resolved compose file failed"
  [[ -z $missing ]] || die "docker-compose.yml runs no service with: $missing (make print-bins: $bins)"
  say "every binary of the Makefile has a service: $bins"
}

# The same topology as deploy/stack.sh, read from stack.sh itself: every
# service of its SERVICES list is a compose service running that binary and
# publishing its admin port on loopback (GOV_ADMIN_PORT, for gov-edge GOV_PORT
# too); the kafka-topics service creates exactly its TOPICS and sets exactly its
# TOPIC_CONFIGS; Kafka, Redis, the gateway and the bundle server publish its
# default ports.
check_topology() {
  local json defs
  json="$(compose config --format json)" || die "docker-compose config --format json failed"
  # Only the three list definitions and the default ports, nothing that runs.
  defs="$(sed -n -e '/^SERVICES=(/,/^)/p' -e '/^TOPICS=(/,/^)/p' -e '/^TOPIC_CONFIGS=(/,/^)/p' \
                 -e 's/^\([A-Z]*_PORT\)="\${GOV_[A-Z_]*:-\$((\([0-9]*\) + PORT_OFFSET))}"$/\1=\2/p' \
                 "$ROOT/deploy/stack.sh")"
  ( eval "$defs"
    [[ ${#SERVICES[@]} -gt 0 && ${#TOPICS[@]} -gt 0 && ${#TOPIC_CONFIGS[@]} -gt 0 ]] \
      || die "could not read SERVICES, TOPICS and TOPIC_CONFIGS from deploy/stack.sh"
    [[ -n ${KAFKA_PORT:-} && -n ${REDIS_PORT:-} && -n ${GATEWAY_PORT:-} && -n ${BUNDLE_PORT:-} ]] \
      || die "could not read the default ports from deploy/stack.sh"
    COMPOSE_JSON="$json" STACK_SERVICES="$(printf '%s\n' "${SERVICES[@]}")" \
    STACK_TOPICS="${TOPICS[*]}" STACK_TOPIC_CONFIGS="${TOPIC_CONFIGS[*]}" \
    STACK_PORTS="kafka=$KAFKA_PORT redis=$REDIS_PORT gateway=$GATEWAY_PORT bundles=$BUNDLE_PORT" \
    python3 -c '
import json, os, re, sys
svcs = json.loads(os.environ["COMPOSE_JSON"])["services"]
errors = []
def published(svc):
    return {(p.get("host_ip"), str(p.get("published"))) for p in svc.get("ports") or []}
by_binary = {}
for name, svc in svcs.items():
    cmd = svc.get("entrypoint") or svc.get("command") or []
    if cmd:
        by_binary.setdefault(cmd[0].rsplit("/", 1)[-1], []).append((name, svc))
for line in os.environ["STACK_SERVICES"].split("\n"):
    if not line.strip():
        continue
    binary, port = line.split()
    found = by_binary.get(binary, [])
    if not found:
        errors.append("%s (deploy/stack.sh SERVICES) has no service" % binary)
        continue
    for name, svc in found:
        env = svc.get("environment") or {}
        if env.get("GOV_ADMIN_PORT") != port:
            errors.append("%s: GOV_ADMIN_PORT=%r, deploy/stack.sh says %s" % (name, env.get("GOV_ADMIN_PORT"), port))
        if binary == "gov-edge" and env.get("GOV_PORT") != port:
            errors.append("%s: GOV_PORT=%r, deploy/stack.sh says %s" % (name, env.get("GOV_PORT"), port))
        if ("127.0.0.1", port) not in published(svc):
            errors.append("%s does not publish 127.0.0.1:%s" % (name, port))
for pair in os.environ["STACK_PORTS"].split():
    name, port = pair.split("=")
    if name not in svcs:
        errors.append("no %s service" % name)
    elif ("127.0.0.1", port) not in published(svcs[name]):
        errors.append("%s does not publish 127.0.0.1:%s (deploy/stack.sh)" % (name, port))
script = "\n".join((svcs.get("kafka-topics") or {}).get("command") or [])
for var, want in (("topics", "STACK_TOPICS"), ("configs", "STACK_TOPIC_CONFIGS")):
    m = re.search(var + r"=\"([^\"]*)\"", script)
    have = set(m.group(1).split()) if m else set()
    need = set(os.environ[want].split())
    if have != need:
        errors.append("kafka-topics %s: missing %s, extra %s (deploy/stack.sh %s)"
                      % (var, sorted(need - have), sorted(have - need), want[6:]))
if errors:
    sys.exit("\n".join(errors))
' ) || die "docker-compose.yml does not describe the topology of deploy/stack.sh"
  say "same topology as deploy/stack.sh: services, admin ports, topics, retention, Kafka/Redis/gateway/bundle ports"
}

# deploy/Dockerfile without an engine: its runtime stage (the last FROM) installs
# the Debian package that holds each shared library a release binary links
# (objdump NEEDED, resolved by ldd, owned per dpkg -S), libc6 aside; and it
# copies every release binary (build/release/bin/*).
check_dockerfile() {
  local df="$ROOT/deploy/Dockerfile" bin="$ROOT/build/release/bin" b lib path pkg
  local -a missing=()
  compgen -G "$bin/*" >/dev/null || die "no release binaries in $bin (make release)"
  grep -q 'cp build/release/bin/\* /out/' "$df" && grep -q '^COPY --from=build /out/ /usr/local/bin/' "$df" \
    || die "deploy/Dockerfile does not copy build/release/bin/* into the runtime image"
  local want
  want=" $(awk '/^FROM /{stage++} {print stage "\t" $0}' "$df" \
            | awk -F'\t' -v last="$(grep -c '^FROM ' "$df")" '$1 == last {print $2}' \
            | sed -n '/apt-get install/,/rm -rf/p' | tr -s ' \\\n' ' ') "
  # library name -> the paths dpkg may have it under: ldd's and the resolved
  # one, each with and without the /usr prefix (merged /usr)
  local -A where=() users=()
  local c
  for b in "$bin"/*; do
    while read -r lib; do
      path="$(ldd "$b" | awk -v l="$lib" '$1 == l {print $3}')"
      [[ -n $path ]] || die "$(basename "$b"): ldd does not resolve $lib"
      for c in "$path" "$(realpath "$path")"; do
        where[$lib]+="$c ${c#/usr} /usr${c#/usr} "
      done
      users[$lib]+="$(basename "$b") "
    done < <(objdump -p "$b" | awk '$1 == "NEEDED" {print $2}')
  done
  # one dpkg -S for all of them ("package[:arch]: path" per path it knows;
  # it exits 1 for the spellings it does not know, which is expected)
  local owners
  # shellcheck disable=SC2046 # the lists are space-separated paths
  owners="$(dpkg -S $(printf '%s ' "${where[@]}" | tr ' ' '\n' | sort -u) 2>/dev/null || true)"
  for lib in "${!where[@]}"; do
    pkg="$(awk -v want=" ${where[$lib]}" 'index(want, " " $NF " ") {sub(/:.*/, "", $1); print $1; exit}' <<<"$owners")"
    [[ -n $pkg ]] || die "no Debian package owns $lib (${where[$lib]})"
    [[ $pkg == libc6 || $want == *" $pkg "* ]] || missing+=("$pkg ($lib of ${users[$lib]% })")
  done
  (( ${#missing[@]} == 0 )) || die "deploy/Dockerfile's runtime stage does not install: ${missing[*]}"
  say "deploy/Dockerfile: the runtime stage installs the package of every library the binaries link"
}

# The gateway: nginx rendering deploy/nginx/gateway.conf.in, in front of the edge.
check_gateway() {
  local json
  json="$(compose config --format json)" || die "docker-compose config --format json failed"
  COMPOSE_JSON="$json" python3 -c '
import json, os, sys
svc = json.loads(os.environ["COMPOSE_JSON"])["services"].get("gateway")
if svc is None:
    sys.exit("no gateway service")
if not str(svc.get("image", "")).startswith("nginx"):
    sys.exit("the gateway service is not nginx: %r" % svc.get("image"))
mounts = [v.get("source", "") for v in svc.get("volumes", [])]
if not any(m.endswith("/deploy/nginx") for m in mounts):
    sys.exit("the gateway does not mount deploy/nginx: %r" % mounts)
if "render.sh" not in " ".join(svc.get("command") or []):
    sys.exit("the gateway does not render deploy/nginx/gateway.conf.in with render.sh")
if "edge" not in (svc.get("depends_on") or {}):
    sys.exit("the gateway does not depend on the edge service")
' || die "docker-compose.yml: the nginx gateway is not as described"
  say "gateway: nginx rendering deploy/nginx/gateway.conf.in in front of edge"
}

case "${1:-}" in
  --build) build_compose; say "Docker Compose $COMPOSE_VERSION: $COMPOSE" ;;
  "")      build_compose; check_config; check_binaries; check_topology; check_gateway; check_dockerfile ;;
  *)       sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
