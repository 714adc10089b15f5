# Soma Governance Core - build, run, test.
#
#   make run     the whole chain on loopback, with a demo tenant (installs what is missing);
#                returns when every component answers 200 on /readyz
#   make test    the whole suite: unit (release + ASan/UBSan + valgrind), fuzz, integration
#   make stop    stops what `make run` started
#   make bench   benchmarks (never part of `make test`)
#
# Sources are found by wildcard: a new common/core/*.c joins libgov_core (pure
# logic), a new common/runtime/*.c joins libgov_runtime (I/O), a new
# tests/unit/test_*.c becomes a unit test, a new tests/fuzz/fuzz_*.c a fuzz
# target, a new processors/<name>/ the binary gov-<name>.

SHELL := /bin/bash
.DEFAULT_GOAL := all

CC      ?= cc
CLANG   ?= clang
PKGS    := rdkafka avro-c hiredis libmicrohttpd openssl jansson libcurl libhs
# p11-kit-1: the PKCS#11 headers only (gov_signer_pkcs11 dlopens the module).
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) p11-kit-1 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
# What core may link: no librdkafka, hiredis, libmicrohttpd or libcurl.
CORE_PKGS  := avro-c openssl jansson libhs
CORE_LIBS  = $(shell pkg-config --libs $(CORE_PKGS) 2>/dev/null) -lm

WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wvla
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -Icommon/core -Icommon/runtime -Ibuild/gen
REL_CFLAGS  := $(BASE_CFLAGS) -O2 -g
SAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 -g $(SAN_FLAGS)

# Two libraries: core (pure: no clock, file, socket or I/O library) and
# runtime (Kafka, Redis, HTTP admin, metrics, configuration, logging).
CORE_SRC     := $(sort $(wildcard common/core/*.c)) build/gen/gov_schemas_gen.c
RUNTIME_SRC  := $(sort $(wildcard common/runtime/*.c))
COMMON_HDR   := $(wildcard common/core/*.h common/runtime/*.h)
PROCESSORS   := $(notdir $(patsubst %/,%,$(dir $(wildcard processors/*/main.c))))
UNIT_SRC     := $(sort $(wildcard tests/unit/test_*.c))
ITEST_SRC    := $(sort $(wildcard tests/integration/test_*.c))
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
SCHEMAS      := $(sort $(wildcard schemas/*.avsc))

# Unit tests of runtime modules link both libraries; every other unit test
# (the core modules') links libgov_core.a alone, so a core test that reaches
# for I/O does not link.
RUNTIME_UNIT := test_admin test_archive_files test_config test_events test_file test_kafka test_keyrotate test_log test_metrics test_runtime test_signer_pem test_state test_state_identity test_time test_spool

# variant -> object dir, flags
define variant_rules
$(1)_CORE_OBJ    := $$(patsubst %.c,build/$(1)/obj/%.o,$$(CORE_SRC))
$(1)_RUNTIME_OBJ := $$(patsubst %.c,build/$(1)/obj/%.o,$$(RUNTIME_SRC))
$(1)_LIBS := build/$(1)/libgov_runtime.a build/$(1)/libgov_core.a
$(1)_BINS := $$(addprefix build/$(1)/bin/gov-,$$(PROCESSORS)) \
             $$(if $$(wildcard http-edge/main.c),build/$(1)/bin/gov-edge) \
             $$(if $$(wildcard tools/govctl/main.c),build/$(1)/bin/govctl)
$(1)_UNIT := $$(patsubst tests/unit/%.c,build/$(1)/tests/%,$$(UNIT_SRC))
$(1)_ITEST := $$(patsubst tests/integration/%.c,build/$(1)/itests/%,$$(ITEST_SRC))

build/$(1)/obj/%.o: %.c $$(COMMON_HDR) | build/gen/gov_schemas_gen.h
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) $$(PKG_CFLAGS) -MMD -MP -c $$< -o $$@

build/$(1)/libgov_core.a: $$($(1)_CORE_OBJ)
	@rm -f $$@
	ar rcs $$@ $$^

build/$(1)/libgov_runtime.a: $$($(1)_RUNTIME_OBJ)
	@rm -f $$@
	ar rcs $$@ $$^

build/$(1)/bin/gov-edge: $$(patsubst %.c,build/$(1)/obj/%.o,$$(wildcard http-edge/*.c)) $$($(1)_LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) -o $$@ $$^ $$(PKG_LIBS)

build/$(1)/bin/govctl: $$(patsubst %.c,build/$(1)/obj/%.o,$$(wildcard tools/govctl/*.c)) $$($(1)_LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) -o $$@ $$^ $$(PKG_LIBS)

$$(addprefix build/$(1)/tests/,$$(RUNTIME_UNIT)): build/$(1)/tests/%: build/$(1)/obj/tests/unit/%.o $$($(1)_LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) -o $$@ $$^ $$(PKG_LIBS) -lcmocka

build/$(1)/tests/%: build/$(1)/obj/tests/unit/%.o build/$(1)/libgov_core.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) -o $$@ $$^ $$(CORE_LIBS) -lcmocka

# gov-edge's parameter reader is edge code, pure: tested with core alone.
build/$(1)/tests/test_oauth_params: build/$(1)/obj/tests/unit/test_oauth_params.o build/$(1)/obj/http-edge/oauth_params.o build/$(1)/libgov_core.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) -o $$@ $$^ $$(CORE_LIBS) -lcmocka

# /v1/authz's request mapping and consistency rules: edge code, pure, tested with core alone.
build/$(1)/tests/test_authz_request: build/$(1)/obj/tests/unit/test_authz_request.o build/$(1)/obj/http-edge/authz_request.o build/$(1)/libgov_core.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) -o $$@ $$^ $$(CORE_LIBS) -lcmocka

# The gateway's upstream (test_gateway, the stack's nginx): a server, not a test.
build/$(1)/itests/upstream_counter: build/$(1)/obj/tests/integration/upstream_counter.o build/$(1)/libgov_core.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) -o $$@ $$^ $$(PKG_LIBS)

build/$(1)/itests/%: build/$(1)/obj/tests/integration/%.o build/$(1)/obj/tests/integration/itest_util.o $$($(1)_LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) -o $$@ $$^ $$(PKG_LIBS) -lcmocka
endef

# variant, flags, processor folder -> build/<variant>/bin/gov-<folder>
define processor_rule
build/$(1)/bin/gov-$(3): $$(patsubst %.c,build/$(1)/obj/%.o,$$(wildcard processors/$(3)/*.c)) $$($(1)_LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(2)) -o $$@ $$^ $$(PKG_LIBS)
endef

$(eval $(call variant_rules,release,REL_CFLAGS))
$(eval $(call variant_rules,asan,ASAN_CFLAGS))
$(foreach p,$(PROCESSORS),$(eval $(call processor_rule,release,REL_CFLAGS,$(p))))
$(foreach p,$(PROCESSORS),$(eval $(call processor_rule,asan,ASAN_CFLAGS,$(p))))

# The integration helper is not itself a test.
release_ITEST := $(filter-out %/itest_util,$(release_ITEST)) build/release/itests/upstream_counter
asan_ITEST    := $(filter-out %/itest_util,$(asan_ITEST))
# Every integration test includes its shared helper's header: a change to it
# rebuilds them (a stale object would read a changed struct wrongly).
$(foreach v,release asan,$(patsubst %.c,build/$(v)/obj/%.o,$(ITEST_SRC) tests/integration/itest_util.c)): \
    tests/integration/itest_util.h
.SECONDARY:

# Schemas are compiled into libgov_core so a binary never depends on where it runs.
# The script replaces an output only when its content changed, and the stamp
# records the run, so a build that changed nothing rebuilds nothing.
build/gen/gov_schemas_gen.c build/gen/gov_schemas_gen.h: build/gen/schemas.stamp ;
build/gen/schemas.stamp: $(SCHEMAS) tools/embed-schemas.sh
	@mkdir -p build/gen
	bash tools/embed-schemas.sh build/gen $(SCHEMAS)
	@touch $@

.PHONY: all release asan unit-bins itest-bins fuzz-bins deps run demo stop test unit fuzz itest bench clean docs-config print-bins compose-check

all: release
release: deps-check $(release_LIBS) $(release_BINS) $(release_UNIT) $(release_ITEST)
# The integration tests whose subject is library code in their own process run
# as their ASan build in the suite's second pass (tests/run.sh): built here.
ASAN_SELF_ITEST := test_kafka_fatal test_kafka_group test_redis_cluster
asan: deps-check $(asan_LIBS) $(asan_BINS) $(asan_UNIT) build/asan/itests/upstream_counter \
      $(addprefix build/asan/itests/,$(ASAN_SELF_ITEST))

# --- fuzz targets (clang + libFuzzer + ASan/UBSan) --------------------------
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Icommon/core -Ibuild/gen -O1 -g \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
# Fuzz targets exercise parsers of outside input: all of them are core, and
# they link core alone.
fuzz_OBJ := $(patsubst %.c,build/fuzz/obj/%.o,$(CORE_SRC))
build/fuzz/obj/%.o: %.c $(COMMON_HDR) | build/gen/gov_schemas_gen.h
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@
build/fuzz/libgov_core.a: $(fuzz_OBJ)
	@rm -f $@
	ar rcs $@ $^
build/fuzz/%: tests/fuzz/%.c build/fuzz/libgov_core.a
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $(filter %.c,$^) $(filter %.a,$^) $(CORE_LIBS)
# gov-identity's JWK check is processor code, pure, fuzzed with core.
build/fuzz/fuzz_identity_jwk: processors/identity/jwk.c
# gov-edge's token endpoint parameters: edge code, pure, fuzzed with core.
build/fuzz/fuzz_oauth_params: http-edge/oauth_params.c
# /v1/authz's original-request mapping: edge code, pure, fuzzed with core.
build/fuzz/fuzz_authz_request: http-edge/authz_request.c
fuzz-bins: deps-check $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))

# --- machine setup ----------------------------------------------------------
# deps-check is cheap when everything is present and installs what is missing.
deps-check:
	@bash deploy/install-deps.sh --build

deps:
	@bash deploy/install-deps.sh --all
	@bash tests/interop/install.sh >/dev/null
	@bash tests/openapi/install.sh >/dev/null

run: deps release
	@bash deploy/stack.sh start
	@set -a; . var/stack.env; set +a; bash deploy/demo.sh show

# The live demo again, against the running stack (make run).
demo:
	@test -f var/stack.env || { echo "no running stack: make run first" >&2; exit 1; }
	@set -a; . var/stack.env; set +a; bash deploy/demo.sh show

stop:
	@bash deploy/stack.sh stop

# The binaries `make release` builds, on one line (tests/compose/check.sh checks
# that docker-compose.yml runs each).
print-bins:
	@echo $(notdir $(release_BINS))

compose-check:
	@bash tests/run.sh compose

# --- tests ------------------------------------------------------------------
# The three builds are independent: `make test` compiles them on every core
# (TEST_JOBS, default nproc) once the dependencies are in place, even when it
# was itself started without -j (as .ci/run does).
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) release asan fuzz-bins
	@bash tests/run.sh all

unit: release asan
	@bash tests/run.sh unit

fuzz: fuzz-bins
	@bash tests/run.sh fuzz

itest: deps release
	@bash tests/run.sh integration

bench: deps release
	@bash deploy/install-deps.sh --bench
	@bash bench/run.sh $(BENCH)

clean:
	rm -rf build

# The configuration reference is generated from each binary's own table.
docs-config: release
	@{ echo "# Configuration reference"; echo; \
	   echo "Generated by \`make docs-config\` from each binary's configuration table (\`--print-config-docs\`)."; \
	   echo "Every key can be set as an environment variable \`GOV_<KEY>\`, in a file (\`--config FILE\`), or as \`--key=value\`."; \
	   for b in build/release/bin/gov-*; do echo; echo "## $$(basename $$b)"; echo; $$b --print-config-docs; done; } > docs/config.md
	@echo "wrote docs/config.md"

# ============================================================================
# --- bench block (make bench; everything below belongs to bench/) -----------
# Benchmark tools: C programs under bench/, linked against the release libraries.
# bench/run.sh builds them with `make bench-tools`; `make bench` runs them.
# Benchmarks are never part of `make test`.
BENCH_TOOLS := gen_requests scorer_bench rego_gen equiv_check loadgen report publish_rulepack sign_bench
BENCH_BINS  := $(addprefix build/release/bench/,$(BENCH_TOOLS))

$(patsubst %,build/release/obj/bench/%.o,$(BENCH_TOOLS) bench_util): bench/bench_util.h

build/release/bench/%: build/release/obj/bench/%.o build/release/obj/bench/bench_util.o $(release_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(PKG_LIBS)

.PHONY: bench-tools
bench-tools: deps-check $(BENCH_BINS)
# --- end of bench block -------------------------------------------------------

# Each object also depends on the headers it actually includes (a binary's
# own headers, such as http-edge/edge.h, are not in COMMON_HDR): the
# compiler writes them into a .d file beside the object.
-include $(shell find build -name '*.d' 2>/dev/null)
