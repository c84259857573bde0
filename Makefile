# Every target runs `cargo xtask`; arguments pass through:
#   make stop SERVICES="api"    make logs SERVICE=api ARGS="-f"    make status ARGS=--json
#   make run CMD="cargo test"   make completions ARGS=bash
SERVICES ?=
SERVICE ?=
ARGS ?=
CMD ?=
XTASK := cargo xtask

.PHONY: start start-bg stop stop-force restart status logs cleanup check build run completions test help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

start: ## Build, start services in the foreground with one log stream; Ctrl+C stops them
	$(XTASK) start $(ARGS) $(SERVICES)

start-bg: ## Build, then start services in the background; returns once all are healthy
	$(XTASK) start-bg $(ARGS) $(SERVICES)

stop: ## Stop services in five phases; nothing is left running
	$(XTASK) stop $(ARGS) $(SERVICES)

stop-force: ## Stop without a grace period (SIGKILL)
	$(XTASK) stop --force $(ARGS) $(SERVICES)

restart: ## Restart services and their dependents; the others keep running
	$(XTASK) restart $(ARGS) $(SERVICES)

status: ## Show what runs (exit 0 all running, 3 none, 1 some)
	$(XTASK) status $(ARGS) $(SERVICES)

logs: ## Print a service's log: make logs SERVICE=api ARGS=-f
	$(XTASK) logs $(SERVICE) $(ARGS)

cleanup: ## Stop this project's leftovers and remove stale records (ARGS=--dry-run)
	$(XTASK) cleanup $(ARGS)

check: ## Check services.toml, programs, ports and state
	$(XTASK) check $(ARGS)

build: ## Run the services' build steps
	$(XTASK) build $(ARGS) $(SERVICES)

run: ## Start services, run CMD, stop what was started: make run CMD="cargo test"
	$(XTASK) run $(ARGS) $(SERVICES) -- $(CMD)

completions: ## Print a shell completion script: make completions ARGS=bash
	@$(XTASK) completions $(ARGS)

test: ## Format check, clippy, the whole test suite with cgroups, then the black-box tests without
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace
	XTASK_CGROUP=0 cargo test -p xtask-tests --test it
