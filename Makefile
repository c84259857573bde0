# Every target runs the xtask binary (what `cargo xtask` runs); arguments pass through,
# and the recipes are not echoed, so that `make status ARGS=--json` prints only JSON.
# SERVICE and SERVICES are the same to every target:
#   make stop SERVICES="api"    make logs SERVICE=api ARGS="-f"    make status ARGS=--json
#   make run CMD="cargo test"   make completions ARGS=bash
# No built-in rules: make would otherwise look for a way to remake each of the crate's
# ~80 source files (RCS, SCCS, ...) on every run, 20 ms of stat calls.
MAKEFLAGS += --no-builtin-rules
.SUFFIXES:

SERVICES ?=
SERVICE ?=
ARGS ?=
CMD ?=
# The binary is run directly while make sees it fresh (newer than the crate's sources,
# Cargo.toml and Cargo.lock): `cargo xtask` spends ~95 ms on cargo's own freshness
# check before xtask starts. Otherwise it is built first, with cargo's progress shown
# (the first build takes about a minute).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
XTASK := $(TARGET_DIR)/xtask/xtask
# How the recipes run it: its hints then name make targets (`make cleanup`), not cargo.
RUN = XTASK_VIA=make $(XTASK)
# make's own wildcard, not a `find` in a shell: one process fewer on every target.
XTASK_SOURCES := $(wildcard $(addprefix stackherd/src/,*.rs */*.rs */*/*.rs */*/*/*.rs)) xtask/src/main.rs stackherd/Cargo.toml xtask/Cargo.toml Cargo.toml Cargo.lock

$(XTASK): $(XTASK_SOURCES)
	@echo "building xtask (the first time takes one to two minutes)"
	cargo build --profile xtask --package xtask --bin xtask
	@touch $@

.PHONY: start start-bg stop stop-force restart status logs ui cleanup check build run completions test help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

start: $(XTASK) ## Build, start services in the foreground with one log stream; Ctrl+C stops them
	@$(RUN) start $(ARGS) $(SERVICES) $(SERVICE)

start-bg: $(XTASK) ## Build, then start services in the background; returns once all are healthy
	@$(RUN) start-bg $(ARGS) $(SERVICES) $(SERVICE)

stop: $(XTASK) ## Stop services in five phases; nothing is left running
	@$(RUN) stop $(ARGS) $(SERVICES) $(SERVICE)

stop-force: $(XTASK) ## Stop without a grace period (SIGKILL)
	@$(RUN) stop --force $(ARGS) $(SERVICES) $(SERVICE)

restart: $(XTASK) ## Restart services and their dependents; the others keep running
	@$(RUN) restart $(ARGS) $(SERVICES) $(SERVICE)

status: $(XTASK) ## Show what runs (exits 0 either way; `cargo xtask status` exits 0 all running, 3 none, 1 some)
	@$(RUN) status $(ARGS) $(SERVICES) $(SERVICE); code=$$?; [ $$code -eq 0 ] || [ $$code -eq 1 ] || [ $$code -eq 3 ]

logs: $(XTASK) ## Print a service's log: make logs SERVICE=api ARGS=-f
	@$(RUN) logs $(SERVICE) $(SERVICES) $(ARGS)

ui: $(XTASK) ## Full-screen view of the running stack: table, logs, keys; q leaves it running
	@$(RUN) ui $(ARGS)

cleanup: $(XTASK) ## Stop this project's leftovers and remove stale records (ARGS=--dry-run)
	@$(RUN) cleanup $(ARGS)

check: $(XTASK) ## Check services.toml, programs, ports and state
	@$(RUN) check $(ARGS)

build: $(XTASK) ## Run the services' build steps
	@$(RUN) build $(ARGS) $(SERVICES) $(SERVICE)

run: $(XTASK) ## Start services, run CMD, stop what was started: make run CMD="cargo test"
	@$(RUN) run $(ARGS) $(SERVICES) $(SERVICE) -- $(CMD)

completions: $(XTASK) ## Print a shell completion script: make completions ARGS=bash
	@$(RUN) completions $(ARGS)

test: ## Format check, clippy, the whole test suite with cgroups, the black-box tests without, the library's package
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace
	XTASK_CGROUP=0 cargo test -p xtask-tests --test it
	cargo package --quiet --package stackherd
