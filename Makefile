# cr: one entry point for everything. On a fresh machine `make demo` and
# `make test` install the pinned toolchains into .tools/ first (Bun from the
# npm registry, Zig from PyPI); re-running with everything in place is a no-op.

BUN_VERSION := 1.4.5
ZIG_VERSION := 0.15.2

TOOLS := $(CURDIR)/.tools
BUN   := $(TOOLS)/bun/node_modules/.bin/bun
ZIG   := $(TOOLS)/zig/ziglang/zig
BUN_STAMP := $(TOOLS)/bun-$(BUN_VERSION).stamp
ZIG_STAMP := $(TOOLS)/zig-$(ZIG_VERSION).stamp
export ZIG_GLOBAL_CACHE_DIR := $(TOOLS)/zig-cache
export PATH := $(dir $(BUN)):$(PATH)

ZIG_SRC := $(shell find zig -name '*.zig' -not -path '*/.zig-cache/*' -not -path '*/zig-out/*') zig/blob.ld
TS_SRC  := $(shell find src -name '*.ts') package.json tsconfig.json
NATIVE  := zig/zig-out/lib/libcr.so zig/zig-out/bin/parasite.bin zig/zig-out/bin/restorer.bin
ZIG_OPT ?= ReleaseSafe

.PHONY: all build tools native workloads demo test bench check clean dist
all: build
build: dist/cr

tools: $(BUN_STAMP) $(ZIG_STAMP)

$(BUN_STAMP):
	@mkdir -p $(TOOLS)
	npm install --prefix $(TOOLS)/bun --no-save --no-package-lock --no-audit --no-fund bun@$(BUN_VERSION)
	@test "$$($(BUN) --version)" = "$(BUN_VERSION)"
	@touch $@

$(ZIG_STAMP):
	@mkdir -p $(TOOLS)
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/zig ziglang==$(ZIG_VERSION)
	@test "$$($(ZIG) version)" = "$(ZIG_VERSION)"
	@touch $@

node_modules/.stamp: package.json bun.lock $(BUN_STAMP)
	$(BUN) install --frozen-lockfile
	@touch $@

$(NATIVE) &: $(ZIG_SRC) $(ZIG_STAMP)
	cd zig && $(ZIG) build -Doptimize=$(ZIG_OPT)
	@touch $(NATIVE)

native: $(NATIVE)

# The commit dist/cr is built from, for `cr --version` ("+dirty" with local changes).
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo +dirty)

dist/cr: $(NATIVE) $(TS_SRC) node_modules/.stamp
	@mkdir -p dist
	$(BUN) build --compile --minify --define 'CR_BUILD_COMMIT="$(COMMIT)"' src/cli.ts --outfile dist/cr

# A release: dist/cr and its checksum (verify with `sha256sum -c cr.sha256` beside it).
dist: dist/cr
	cd dist && sha256sum cr > cr.sha256

workloads:
	$(MAKE) -s -C test/workloads

demo: dist/cr workloads
	bash scripts/demo.sh

test: dist/cr workloads
	$(BUN) test/run.ts

bench: dist/cr workloads
	$(BUN) bench/run.ts

check: dist/cr
	dist/cr check

clean:
	rm -rf dist zig/zig-out zig/.zig-cache test/workloads/bin
