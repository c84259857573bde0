# stackherd's make targets, for a Makefile of your own: `include stackherd.mk`.
#
#   make start-bg               make stop             make status ARGS=--json
#   make logs SERVICE=api ARGS=-f                     make run CMD="cargo test"
#
# It defines no `help` or `test`, sets no MAKEFLAGS, and reads SERVICE, SERVICES, ARGS
# and CMD only from make's command line or the environment, never a variable of your
# Makefile's. Every name it defines begins with STACKHERD_, and every target with
# STACKHERD_PREFIX: set `STACKHERD_PREFIX = stack-` before the include when yours has
# a `start`, `build`, `check` or `run` of its own (`make stack-start-bg`).
#
# The targets run the xtask binary directly while it is newer than STACKHERD_SOURCES
# (cargo's freshness check costs ~100 ms before every command), and build it first
# otherwise. Where cargo puts it comes from CARGO_TARGET_DIR, else from cargo itself
# (`build.target-dir` in any cargo config), asked once and kept in a cache file.

# What the goal was before: the fragment's rules must not become a bare `make`'s.
stackherd_goal := $(.DEFAULT_GOAL)

STACKHERD_PREFIX ?=
# The package of your xtask, and its binary.
STACKHERD_PACKAGE ?= xtask
STACKHERD_BIN ?= $(STACKHERD_PACKAGE)
# The cargo profile it is built in: `[profile.xtask]` in your workspace's Cargo.toml
# (`stackherd init` adds it), so that your own `cargo build` keeps its dev profile.
STACKHERD_PROFILE ?= xtask
# What makes the binary stale: your xtask's sources and the lock file (those there are:
# a fresh repository has no lock file yet).
STACKHERD_SOURCES ?= $(wildcard $(addprefix xtask/src/,*.rs */*.rs */*/*.rs) xtask/Cargo.toml Cargo.toml Cargo.lock)

# Only what make's command line or the environment says (`SERVICE=api make logs` too): a
# variable of the same name in your Makefile means something else.
stackherd_given = $(if $(filter command line environment environment override,$(origin $(1))),$($(1)))
STACKHERD_SERVICES = $(call stackherd_given,SERVICES) $(call stackherd_given,SERVICE)
STACKHERD_ARGS = $(call stackherd_given,ARGS)

# The target directory: CARGO_TARGET_DIR, else cargo's answer, cached per checkout in
# the user's cache directory and asked again when a cargo config or Cargo.toml changes.
# No `'` in it: the shell below quotes it so (a directory name is no command).
STACKHERD_CACHE := $(subst ',,$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/stackherd/target-dir$(subst /,%,$(CURDIR)))
ifneq ($(CARGO_TARGET_DIR),)
STACKHERD_TARGET_DIR := $(CARGO_TARGET_DIR)
else
STACKHERD_TARGET_DIR := $(shell \
  c='$(STACKHERD_CACHE)'; \
  if [ -s "$$c" ] && [ -z "$$(find Cargo.toml .cargo ../.cargo "$${CARGO_HOME:-$$HOME/.cargo}/config.toml" "$${CARGO_HOME:-$$HOME/.cargo}/config" -maxdepth 1 -newer "$$c" 2>/dev/null)" ]; then \
    cat "$$c"; \
  else \
    d=$$(cargo metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'); \
    mkdir -p "$$(dirname "$$c")" && printf '%s\n' "$${d:-target}" > "$$c"; \
    printf '%s\n' "$${d:-target}"; \
  fi)
endif
STACKHERD := $(STACKHERD_TARGET_DIR)/$(STACKHERD_PROFILE)/$(STACKHERD_BIN)
# Hints then name make targets (`make cleanup`), prefixed as yours are.
STACKHERD_RUN = XTASK_VIA=make:$(STACKHERD_PREFIX) $(STACKHERD)

# Two workspaces that share a target directory put their binaries at the same path:
# the one there is this workspace's only while it is the one this workspace's last
# build left (same file, same time). Otherwise cargo is asked, which puts ours back.
STACKHERD_STAMP := $(STACKHERD_CACHE).built
# (Without `'`, which would end the shell's quotes: such a path is then always stale.)
ifneq ($(shell cat '$(STACKHERD_STAMP)' 2>/dev/null),$(shell stat -c %d:%i:%Y '$(subst ',,$(STACKHERD))' 2>/dev/null))
.PHONY: $(STACKHERD)
endif

$(STACKHERD): $(STACKHERD_SOURCES)
	@echo "building $(STACKHERD_BIN) (the first time takes a few minutes)"
	cargo build --profile $(STACKHERD_PROFILE) --package $(STACKHERD_PACKAGE) --bin $(STACKHERD_BIN)
	@touch $@
	@mkdir -p "$$(dirname '$(STACKHERD_STAMP)')" && stat -c %d:%i:%Y '$(subst ',,$@)' > '$(STACKHERD_STAMP)' 2>/dev/null || true

.PHONY: $(addprefix $(STACKHERD_PREFIX),start start-bg stop stop-force restart status logs ui cleanup check build run completions)

$(STACKHERD_PREFIX)start: $(STACKHERD) ## Build, start services in the foreground with one log stream; Ctrl+C stops them
	@$(STACKHERD_RUN) start $(STACKHERD_ARGS) $(STACKHERD_SERVICES)

$(STACKHERD_PREFIX)start-bg: $(STACKHERD) ## Build, then start services in the background; returns once all are healthy
	@$(STACKHERD_RUN) start-bg $(STACKHERD_ARGS) $(STACKHERD_SERVICES)

$(STACKHERD_PREFIX)stop: $(STACKHERD) ## Stop services in five phases; nothing is left running
	@$(STACKHERD_RUN) stop $(STACKHERD_ARGS) $(STACKHERD_SERVICES)

$(STACKHERD_PREFIX)stop-force: $(STACKHERD) ## Stop without a grace period (SIGKILL)
	@$(STACKHERD_RUN) stop --force $(STACKHERD_ARGS) $(STACKHERD_SERVICES)

$(STACKHERD_PREFIX)restart: $(STACKHERD) ## Restart services and their dependents; the others keep running
	@$(STACKHERD_RUN) restart $(STACKHERD_ARGS) $(STACKHERD_SERVICES)

$(STACKHERD_PREFIX)status: $(STACKHERD) ## Show what runs (exits 0 whatever runs; the command itself exits 0 all running, 3 none, 1 some)
	@$(STACKHERD_RUN) status $(STACKHERD_ARGS) $(STACKHERD_SERVICES); code=$$?; [ $$code -eq 0 ] || [ $$code -eq 1 ] || [ $$code -eq 3 ]

$(STACKHERD_PREFIX)logs: $(STACKHERD) ## Print a service's log: make logs SERVICE=api ARGS=-f
	@$(STACKHERD_RUN) logs $(STACKHERD_SERVICES) $(STACKHERD_ARGS)

$(STACKHERD_PREFIX)ui: $(STACKHERD) ## Full-screen view of the running stack: table, logs, keys; q leaves it running
	@$(STACKHERD_RUN) ui $(STACKHERD_ARGS)

$(STACKHERD_PREFIX)cleanup: $(STACKHERD) ## Stop this project's leftovers and remove stale records (ARGS=--dry-run)
	@$(STACKHERD_RUN) cleanup $(STACKHERD_ARGS)

$(STACKHERD_PREFIX)check: $(STACKHERD) ## Check services.toml, programs, ports and state
	@$(STACKHERD_RUN) check $(STACKHERD_ARGS)

$(STACKHERD_PREFIX)build: $(STACKHERD) ## Run the services' build steps
	@$(STACKHERD_RUN) build $(STACKHERD_ARGS) $(STACKHERD_SERVICES)

$(STACKHERD_PREFIX)run: $(STACKHERD) ## Start services, run CMD, stop what was started: make run CMD="cargo test"
	@$(STACKHERD_RUN) run $(STACKHERD_ARGS) $(STACKHERD_SERVICES) -- $(call stackherd_given,CMD)

$(STACKHERD_PREFIX)completions: $(STACKHERD) ## Print a shell completion script: make completions ARGS=bash
	@$(STACKHERD_RUN) completions $(STACKHERD_ARGS)

# A bare `make` runs what it ran before the include.
.DEFAULT_GOAL := $(stackherd_goal)
