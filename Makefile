# agentbox: `make` builds the C core, `make test` runs the specs, `make demo`
# runs the example. Every target installs what it needs first (`make deps`).
LUA      ?= lua5.4
LUA_INC  ?= /usr/include/lua5.4
CC       ?= cc
OPT      ?= -O2 -g
# -fvisibility=hidden: core.so exports only what agentbox.h marks AGENTBOX_API
CFLAGS_ALL = -std=c11 -Wall -Wextra -Werror -fPIC -fvisibility=hidden $(OPT) -I$(LUA_INC) -Isrc $(CFLAGS)
LIBS     = $(EXTRA_LIBDIRS) -lcurl -lcrypto
SRC      = $(wildcard src/*.c)
CORE_SRC = $(filter-out src/sup_main.c src/spawnsrv.c src/sandbox_spare.c src/blocksrv.c src/blockstream.c src/preloadcl.c,$(SRC))
HDR      = $(wildcard src/*.h)
BUILD    ?= build
SO       = $(BUILD)/agentbox/core.so
SUP      = $(BUILD)/agentbox/agentbox-sup
IMAGE    ?= agentbox/sandbox:latest
BUSTED   = $(LUA) /usr/bin/busted
export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;
export AGENTBOX_SUP := $(CURDIR)/$(SUP)
# Bare `make` builds and prints the paths (`rock`, defined first, is luarocks')
.DEFAULT_GOAL := all

DEB_PKGS = lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev lua-cjson lua-busted \
           python3 gcc make libc6-dev curl debootstrap luarocks lua-check lua-ldoc \
           python3-matplotlib

.PHONY: all deps lint test specs test-image check demo demo-chart bench chaos image install clean paths rock-check host-demo rock doc dist

# What `luarocks make` builds and installs (no apt-get: users may not be root)
INST_PREFIX ?= /usr/local
INST_LIBDIR ?= $(INST_PREFIX)/lib/lua/5.4
INST_LUADIR ?= $(INST_PREFIX)/share/lua/5.4
INST_BINDIR ?= $(INST_PREFIX)/bin
rock: $(SO) $(SUP)

install: $(SO) $(SUP)
	install -d $(INST_LIBDIR)/agentbox $(INST_LUADIR)/agentbox/executor $(INST_LUADIR)/agentbox/agent $(INST_PREFIX)/include
	install -m 0755 $(SO) $(INST_LIBDIR)/agentbox/core.so
	install -m 0755 $(SUP) $(INST_LIBDIR)/agentbox/agentbox-sup
	install -m 0644 lua/agentbox/*.lua $(INST_LUADIR)/agentbox/
	install -m 0644 lua/agentbox/executor/*.lua $(INST_LUADIR)/agentbox/executor/
	install -m 0644 lua/agentbox/executor/*.py $(INST_LUADIR)/agentbox/executor/
	install -m 0644 lua/agentbox/agent/*.lua $(INST_LUADIR)/agentbox/agent/
	install -m 0644 src/agentbox.h $(INST_PREFIX)/include/agentbox.h


all: deps
	@$(MAKE) --no-print-directory $(SO) $(SUP)
	@echo "export LUA_PATH='$(LUA_PATH)' LUA_CPATH='$(LUA_CPATH)'"

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null || \
	    { echo "apt-get install failed: run 'apt-get install $$missing' as root"; exit 1; }; \
	fi

$(SO): $(CORE_SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $(CORE_SRC) $(LIBS)

# The in-container supervisor: static, so it runs in any image. Its sources
# are also in core.so (the fork path), but for main and the spawn server.
SUP_SRC = src/sup_main.c src/sup.c src/sup_exec.c src/sup_tree.c src/quota.c src/quota_walk.c src/quota_held.c \
          src/spawnsrv.c src/blocksrv.c src/blockstream.c src/streamproto.c src/spawnproto.c src/cgroup.c src/seccomp.c \
          src/landlock.c src/sysutil.c src/sandbox.c src/sandbox_fs.c src/sandbox_cgroup.c src/sandbox_spare.c src/preloadcl.c
SUP_HDR = src/sup.h src/sup_int.h src/deadline.h src/quota.h src/quota_int.h src/spawnproto.h src/streamproto.h src/cgroup.h \
          src/seccomp.h src/landlock.h src/sysutil.h src/sandbox.h src/sandbox_cgroup.h src/sandbox_spare.h
$(SUP): $(SUP_SRC) $(SUP_HDR)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -static -o $@ $(SUP_SRC)

paths:
	@echo "export LUA_PATH='$(LUA_PATH)' LUA_CPATH='$(LUA_CPATH)'"

# `make image PACKAGES="python3-seaborn"`: the image plus Debian packages, tagged
# agentbox/sandbox:plus-python3-seaborn (unless IMAGE= names it); point an
# executor at it with AGENTBOX_IMAGE= or image = (README: adding packages).
image: deps
	@AGENTBOX_IMAGE_PACKAGES="$(PACKAGES)" bash scripts/build_image.sh \
	  $(if $(and $(PACKAGES),$(filter file,$(origin IMAGE))),,$(IMAGE))

# The #docker specs run in the sandbox image: when a Docker daemon answers,
# build it first (cached: under a second when up to date). Without a daemon
# those specs are pending, or fail under CI=true.
test-image: all
	@if $(LUA) -e 'os.exit(require("agentbox.engine").available() and 0 or 1)' >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory image; \
	else echo "Docker is not reachable: not building $(IMAGE)"; fi

# luacheck over every Lua file (lua/, spec/, bench/, examples/); .luacheckrc
# says what the code may do. `make test` runs it before the specs.
lint: deps
	@luacheck --no-color --codes --formatter plain . || \
	  { echo "lint failed: luacheck found the problems listed above (fix them; .luacheckrc says what is allowed)"; exit 1; }
	@echo "lint: no luacheck warnings"

test: all lint test-image
	@$(MAKE) --no-print-directory $(HOST) $(STATES_HOST)
	@bash scripts/run_specs.sh $(BUSTED)

# `make specs SPECS=spec/x_spec.lua`: run specs without (re)building the image
specs: all
	@$(MAKE) --no-print-directory $(HOST) $(STATES_HOST)
	@bash scripts/run_specs.sh $(BUSTED)

# `make check`: the suite under ASan, UBSan and LeakSanitizer, with the
# sanitized core.so in busted itself (--cpath: .busted would put build/ first)
# and sanitized C hosts. Leak checking is on only in our own programs, by
# name: scripts/lsan/<program> (lua5.4 for busted and nested Lua, the hosts)
# turns it on, so a shell or tool that a spec runs and that inherits
# LD_PRELOAD does not report its own leaks. scripts/lsan.supp lists what Lua
# and libcurl keep on purpose. Every report (from any process) goes to a file
# under build-san/sanitizer/; they are printed after the suite and fail it.
# A report at exit ends the process before stdio is flushed, so busted's
# output is line-buffered (LUA_INIT), and core.so is linked -z nodelete so
# that a leak's stack still names its functions after Lua's dlclose.
# Not a report: ASan's warning that a supervisor's exec trampoline (sup.c:
# clone(CLONE_VM) on a stack of its own) calls _exit off the known stack.
SAN_LOG = $(CURDIR)/build-san/sanitizer
check: deps
	$(MAKE) BUILD=build-san OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LIBS="-lcurl -lcrypto -fsanitize=address,undefined -Wl,-z,nodelete" all build-san/host build-san/states_host
	@rm -rf $(SAN_LOG) && mkdir -p $(SAN_LOG) && chmod 1777 $(SAN_LOG)   # specs run some programs as uid 65534
	@{ LUA_CPATH='$(CURDIR)/build-san/?.so;;' AGENTBOX_SUP='$(CURDIR)/build-san/agentbox/agentbox-sup' \
	  LUA_INIT_5_4="io.stdout:setvbuf('line')" \
	  BUSTED_ARGS="--cpath=$(CURDIR)/build-san/?.so $${BUSTED_ARGS:-}" \
	  LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=abort_on_error=1:detect_leaks=0:include_if_exists=$(CURDIR)/scripts/lsan/%b:log_path=$(SAN_LOG)/asan \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SAN_LOG)/ubsan \
	  bash scripts/run_specs.sh $(BUSTED); echo $$? >build-san/check.rc; } | tee build-san/check.out
	@rc=$$(cat build-san/check.rc); \
	for f in $(SAN_LOG)/*; do \
	  [ -f "$$f" ] && ! grep -qv -e 'ASan is ignoring requested __asan_handle_no_return' \
	    -e '^False positive error reports may follow' -e '^For details see .*sanitizers/issues/189' "$$f" && rm -f "$$f"; \
	done; \
	n=$$(ls $(SAN_LOG) | wc -l); \
	if [ "$$n" -gt 0 ]; then \
	  for f in $(SAN_LOG)/*; do echo "== sanitizer report $$f"; cat "$$f"; done; \
	  echo "sanitizer reports: $$n (each one fails the run; kept in $(SAN_LOG)/)"; \
	  set -- $$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' build-san/check.out | tail -1) 0 0; \
	  echo "$$1 passed, $$(($$2 + n)) failed"; \
	  rc=1; \
	fi; exit $$rc

# The data-analysis chat: a (scripted, offline) model writes pandas code that
# runs in the hardened container; examples/run_blocks.lua is the small one.
demo: all test-image
	@AGENTBOX_IMAGE=$${AGENTBOX_IMAGE:-$(IMAGE)} $(LUA) examples/data_analysis.lua

# AutoGen's "Plot a chart of NVDA and TESLA stock price change YTD" against a
# local CSV (the sandbox has no network): leaves chart_workspace/chart.png
demo-chart: all test-image
	@AGENTBOX_IMAGE=$${AGENTBOX_IMAGE:-$(IMAGE)} $(LUA) examples/plot_chart.lua

bench: all
	@bash bench/run.sh

# SIGKILLed chats with code, then leftovers counted (bench/chaos/run.sh; not in `make test`)
chaos: all test-image
	@bash bench/chaos/run.sh

rock-check: deps
	@bash scripts/rock_check.sh

# The source tarball rockspec/agentbox-<version>-1.rockspec builds from (its source.url)
VERSION = $(shell sed -n 's/^\#define AGENTBOX_VERSION "\(.*\)"/\1/p' src/agentbox.h)
dist:
	@mkdir -p $(BUILD) && git archive --prefix=agentbox-$(VERSION)/ -o $(BUILD)/agentbox-$(VERSION).tar.gz HEAD
	@echo $(BUILD)/agentbox-$(VERSION).tar.gz

# The API reference (LDoc) in build/doc/index.html, from types/agentbox.d.lua and lua/agentbox
doc: deps
	@bash scripts/build_doc.sh

HOST = $(BUILD)/host
$(HOST): examples/host/host.c $(CORE_SRC) $(HDR)
	$(CC) $(CFLAGS_ALL) -o $@ examples/host/host.c $(CORE_SRC) -llua5.4 $(LIBS) -lm -ldl

# A C host that opens and closes many lua_States (spec/lifecycle_spec.lua)
STATES_HOST = $(BUILD)/states_host
$(STATES_HOST): spec/support/states_host.c $(CORE_SRC) $(HDR)
	$(CC) $(CFLAGS_ALL) -o $@ spec/support/states_host.c $(CORE_SRC) -llua5.4 $(LIBS) -lm -ldl

# A C host with a 60 Hz frame loop stepping 16 concurrent conversations
host-demo: all test-image
	@$(MAKE) --no-print-directory $(HOST)
	@AGENTBOX_IMAGE=$${AGENTBOX_IMAGE:-$(IMAGE)} $(HOST) examples/host/chats.lua

clean:
	rm -rf build build-san
