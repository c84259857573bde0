# This repository's Makefile, as a team's would be: its own `help` and `test`, and
# stackherd's targets from the fragment it includes. Arguments pass through, and the
# recipes are not echoed, so that `make status ARGS=--json` prints only JSON:
#   make stop SERVICES="api"    make logs SERVICE=api ARGS="-f"    make status ARGS=--json
#   make run CMD="cargo test"   make completions ARGS=bash
# No built-in rules: make would otherwise look for a way to remake each of the crate's
# ~80 source files (RCS, SCCS, ...) on every run, 20 ms of stat calls.
MAKEFLAGS += --no-builtin-rules
.SUFFIXES:

# stackherd's targets (start, start-bg, stop, status, logs, ...) come from the fragment a
# team includes too; this Makefile adds `help` and `test`. The binary is stale when the
# library's sources change as well as this xtask's.
STACKHERD_SOURCES := $(wildcard $(addprefix stackherd/src/,*.rs */*.rs */*/*.rs */*/*/*.rs)) xtask/src/main.rs stackherd/Cargo.toml xtask/Cargo.toml Cargo.toml Cargo.lock
include stackherd/make/stackherd.mk

.PHONY: help test

help: ## List the targets
	@grep -hE '^[$$()A-Za-z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/^$$(STACKHERD_PREFIX)/$(STACKHERD_PREFIX)/' | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

test: ## Format check, clippy, the whole test suite with cgroups, the black-box tests without, the library's package
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --package stackherd --no-default-features --all-targets -- -D warnings
	cargo test --workspace
	XTASK_CGROUP=0 cargo test -p xtask-tests --test it
	cargo package --quiet --package stackherd
