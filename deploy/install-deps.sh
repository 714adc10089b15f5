#!/usr/bin/env bash
# deploy/install-deps.sh - install what this project needs on Debian bookworm,
# and only what is missing.
#
#   --build   compilers and -dev libraries (make calls this on every build, so
#             it must stay fast: one dpkg-query when everything is present)
#   --all     --build + runtime: Redis, SoftHSM2, nginx, kcat, promtool, curl,
#             Java >= 17, Maven, and the Apache Kafka 3.9.1 jars (Maven Central)
#   --kafka   only the Kafka jars (deploy/stack.sh calls this when they are missing)
#   --bench   --all + what only `make bench` uses: wrk (HTTP load), gnuplot-nox (the
#             rate sweep's PNG)
#
# Environment: GOV_KAFKA_LIBS  where the Kafka jars go
#                              (default $HOME/.cache/soma-gov/kafka-3.9.1/libs)
#
# Runs unattended (CI=true, no tty): DEBIAN_FRONTEND=noninteractive, apt-get -y.
# Packages are installed with a temporary policy-rc.d so apt does not start the
# distribution's own redis-server/nginx services; the stack runs its own
# instances on its own ports (deploy/stack.sh).
set -euo pipefail

BUILD_PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev
  librdkafka-dev libavro-dev libhiredis-dev libmicrohttpd-dev libssl-dev
  libjansson-dev libcmocka-dev libcurl4-openssl-dev libvectorscan-dev valgrind
  libp11-kit-dev
)
# libvectorscan-dev conflicts with (and replaces) libhyperscan-dev: apt removes
# the latter when it installs the former. That is intended.
RUNTIME_PKGS=(
  redis-server redis-tools softhsm2 opensc nginx kcat prometheus curl
  python3 python3-cryptography python3-venv ca-certificates jq
)
# Only `make bench` needs these; `make run` and `make test` never install them.
BENCH_PKGS=(wrk gnuplot-nox)
JAVA_PKG=openjdk-17-jre-headless
MAVEN_PKG=maven

KAFKA_VERSION=3.9.1
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LIBS="${GOV_KAFKA_LIBS:-${HOME:-/root}/.cache/soma-gov/kafka-$KAFKA_VERSION/libs}"
KAFKA_MARKER=".soma-gov-complete"

say() { printf '==> %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

# --- Debian packages -------------------------------------------------------

# Prints the packages of "$@" that are not installed (one dpkg-query call).
missing_pkgs() {
  local installed
  installed="$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null \
               | awk '$NF == "installed" && $(NF-1) == "ok" { print $1 }')" || true
  local p
  for p in "$@"; do
    if ! grep -qx -- "$p" <<<"$installed"; then
      printf '%s\n' "$p"
    fi
  done
}

SUDO=()
need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo -n)
    else
      die "packages are missing and this is not root (and no sudo): $*"
    fi
  fi
}

# Concurrent runs (make -j runs `deps` and `deps-check` side by side) queue
# here; whoever comes second re-checks and usually finds nothing to do.
LOCKED=0
take_lock() {
  [[ $LOCKED -eq 1 ]] && return 0
  local f=/tmp/soma-gov-install-deps.lock
  exec 8>>"$f" || die "cannot open $f"
  flock -w 1800 8 || die "another install-deps.sh holds $f"
  LOCKED=1
}

APT_UPDATED=0
POLICY_RC_INSTALLED=0
cleanup_policy_rc() {
  if [[ $POLICY_RC_INSTALLED -eq 1 ]]; then
    "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    POLICY_RC_INSTALLED=0
  fi
}
trap cleanup_policy_rc EXIT

apt_install() {
  [[ $# -gt 0 ]] || return 0
  take_lock
  local -a pkgs
  mapfile -t pkgs < <(missing_pkgs "$@")
  set -- "${pkgs[@]}"
  [[ $# -gt 0 ]] || return 0
  need_root "$@"
  export DEBIAN_FRONTEND=noninteractive
  # Keep apt from starting the distro's redis-server / nginx services (the
  # standard Debian mechanism for containers and image builds). Only when
  # there is no policy of the machine's own.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from soma-gov deploy/install-deps.sh\nexit 101\n' \
      | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 0755 /usr/sbin/policy-rc.d
    POLICY_RC_INSTALLED=1
  fi
  if [[ $APT_UPDATED -eq 0 ]]; then
    say "apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
      -o DPkg::Lock::Timeout=300 \
      >/tmp/soma-gov-apt-update.log 2>&1 \
      || { tail -n 20 /tmp/soma-gov-apt-update.log >&2; die "apt-get update failed"; }
    APT_UPDATED=1
  fi
  # openjdk's postinst needs this directory; minimal images drop it.
  "${SUDO[@]}" mkdir -p /usr/share/man/man1
  say "installing: $*"
  # (the lock timeout covers a fresh VM's unattended-upgrades run)
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends -o DPkg::Lock::Timeout=300 \
    -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "$@" \
    || die "apt-get install failed for: $*"
  cleanup_policy_rc
}

ensure_build() {
  local missing
  mapfile -t missing < <(missing_pkgs "${BUILD_PKGS[@]}")
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}"
  fi
}

# 0 when a `java` of major version >= 17 is on PATH.
have_java17() {
  command -v java >/dev/null 2>&1 || return 1
  local v major
  v="$(java -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')"
  major="${v%%.*}"
  [[ $major == 1 ]] && major="$(cut -d. -f2 <<<"$v")"
  [[ $major =~ ^[0-9]+$ ]] && [[ $major -ge 17 ]]
}

ensure_runtime() {
  local missing
  mapfile -t missing < <(missing_pkgs "${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}")
  if ! have_java17; then missing+=("$JAVA_PKG"); fi
  if ! command -v mvn >/dev/null 2>&1; then missing+=("$MAVEN_PKG"); fi
  # Node runs only the interop checks (tests/interop). A node already on PATH
  # (another vendor's package, which brings its own npm) is used as it is:
  # Debian's npm would conflict with it.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
  fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}"
  fi
  have_java17 || die "java >= 17 is still not on PATH after installing $JAVA_PKG"
}

# --- Apache Kafka jars -----------------------------------------------------

pom_digest() { sha256sum "$KAFKA_POM" | cut -d' ' -f1; }

kafka_libs_ok() {
  [[ -f "$KAFKA_LIBS/$KAFKA_MARKER" ]] \
    && [[ "$(cat "$KAFKA_LIBS/$KAFKA_MARKER")" == "$(pom_digest)" ]]
}

ensure_kafka() {
  [[ -f $KAFKA_POM ]] || die "missing $KAFKA_POM"
  if kafka_libs_ok; then return 0; fi
  # A directory the user pointed GOV_KAFKA_LIBS at and filled (for example the
  # libs/ of an Apache Kafka tarball) is used as it is.
  if [[ -n ${GOV_KAFKA_LIBS:-} && ! -f "$KAFKA_LIBS/$KAFKA_MARKER" ]] \
     && compgen -G "$KAFKA_LIBS/kafka_2.13-3.9.*.jar" >/dev/null; then
    return 0
  fi
  take_lock
  if kafka_libs_ok; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found; run: bash deploy/install-deps.sh --all"
  say "fetching Apache Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIBS"
  local parent tmp
  parent="$(dirname "$KAFKA_LIBS")"
  mkdir -p "$parent"
  tmp="$(mktemp -d "$parent/.libs.tmp.XXXXXX")"
  # (Maven 3.8 prints colour resets even in batch mode; sed drops them.)
  if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" \
        -Dgov.kafka.workdir="$parent/.mvn-work" 2>&1 \
        | sed -u 's/\x1b\[[0-9;]*m//g'; then
    rm -rf "$tmp"
    die "maven could not fetch the Kafka jars (network to Maven Central? see output above)"
  fi
  compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null \
    || { rm -rf "$tmp"; die "maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"; }
  pom_digest >"$tmp/$KAFKA_MARKER"
  rm -rf "$parent/.mvn-work"
  if [[ -d $KAFKA_LIBS ]]; then
    rm -rf "$KAFKA_LIBS.old"
    mv "$KAFKA_LIBS" "$KAFKA_LIBS.old"
  fi
  mv "$tmp" "$KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS.old"
  say "Kafka jars ready: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

# --- main ------------------------------------------------------------------

case "${1:-}" in
  --build) ensure_build ;;
  --all)   ensure_runtime; ensure_kafka ;;
  --kafka) ensure_kafka ;;
  --bench) ensure_runtime; ensure_kafka
           mapfile -t missing_bench < <(missing_pkgs "${BENCH_PKGS[@]}")
           if [[ ${#missing_bench[@]} -gt 0 ]]; then apt_install "${missing_bench[@]}"; fi ;;
  -h|--help) usage ;;
  *) usage ;;
esac
