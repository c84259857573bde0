# Every target runs `cargo xtask`; arguments pass through:
#   make stop SERVICES="api"    make logs SERVICE=api ARGS="-f"    make status ARGS=--json
SERVICES ?=
SERVICE ?=
ARGS ?=
XTASK := cargo xtask

.PHONY: start start-bg stop stop-force restart status logs cleanup check test help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

start: ## Build the demo binaries, start services in the foreground with one log stream; Ctrl+C stops
	cargo build --quiet --workspace --bins
	$(XTASK) start $(ARGS) $(SERVICES)

start-bg: ## Build the demo binaries, then start services in the background until healthy
	cargo build --quiet --workspace --bins
	$(XTASK) start-bg $(ARGS) $(SERVICES)

stop: ## Stop services in five phases; nothing is left running
	$(XTASK) stop $(ARGS) $(SERVICES)

stop-force: ## Stop without a grace period (SIGKILL)
	$(XTASK) stop --force $(ARGS) $(SERVICES)

restart: ## Restart services and their dependents; the others keep running
	cargo build --quiet --workspace --bins
	$(XTASK) restart $(ARGS) $(SERVICES)

status: ## Show what runs (exit 0 all running, 3 none, 1 some)
	$(XTASK) status $(ARGS) $(SERVICES)

logs: ## Print a service's log: make logs SERVICE=api ARGS=-f
	$(XTASK) logs $(SERVICE) $(ARGS)

cleanup: ## Stop this project's leftovers and remove stale records (ARGS=--dry-run)
	$(XTASK) cleanup $(ARGS)

check: ## Check services.toml, programs, ports and state
	$(XTASK) check $(ARGS)

test: ## Format check, clippy with warnings as errors, the whole test suite
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace
