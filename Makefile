# Hearth developer entry points. `make` (or `make help`) lists the targets.

CARGO ?= cargo
# Keep build output outside the clone so fresh clones (e.g. CI) reuse it.
export CARGO_TARGET_DIR ?= $(if $(HOME),$(HOME)/.cache/hearth/target,$(CURDIR)/target)
BUF := .tools/node_modules/.bin/buf
DEPS := bash scripts/ensure-deps.sh
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help deps build run token test lint fmt bench clean-data verify-audit

help: ## Show this help
	@echo "usage: make <target> [ARGS=...]"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | \
	  awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

deps: ## Install missing system tools (Postgres, nats-server, C compiler)
	@$(DEPS)

build: ## Build the whole workspace (all targets)
	@$(DEPS)
	$(CARGO) build --workspace --all-targets

run: ## Run everything locally with demo data (Ctrl-C stops); extra flags via ARGS=
	@$(DEPS) --with-buf
	$(CARGO) build -p referrals -p hearth-dev
	exec $(CARGO) run -q -p hearth-dev -- run $(ARGS)

token: ## Print a bearer token for the local run, e.g. ARGS='--org midlothian --roles triage'
	@$(CARGO) run -q -p hearth-dev -- token $(ARGS)

test: ## Run all tests (they start their own private Postgres and NATS)
	@$(DEPS)
	RUST_BACKTRACE=1 $(CARGO) test --workspace --all-targets

lint: ## Check formatting, lint protos with buf, run clippy with -D warnings
	@$(DEPS) --with-buf --with-lint-tools
	$(CARGO) fmt --all -- --check
	cd proto && ../$(BUF) lint
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format all Rust code
	$(CARGO) fmt --all

verify-audit: ## Check the audit log of the local run (`make run`): its hash chains and seals
	@test -f .hearth/dev.env || { echo "no local run yet: start one with make run"; exit 1; }
	@. ./.hearth/dev.env && $(CARGO) build -q -p referrals && \
	  HEARTH_DATABASE_URL="$$HEARTH_DEV_REFERRALS_DB_URL" \
	  HEARTH_AUDIT_SEAL_KEY="$$(cat "$$HEARTH_DEV_AUDIT_SEAL_KEY_FILE")" \
	  $(CARGO) run -q -p referrals -- verify-audit

bench: ## Run the benchmark (release build); extra flags via ARGS=
	@$(DEPS)
	exec $(CARGO) run --release -q -p hearth-dev -- bench $(ARGS)

clean-data: ## Delete local run data in .hearth/ (and the Postgres data it put under /var/tmp)
	@for d in "$$(cat .hearth/data-elsewhere 2>/dev/null)" .hearth; do \
	  case "$$d" in /var/tmp/hearth-*|.hearth) [ -e "$$d" ] || continue ;; *) continue ;; esac; \
	  rm -rf "$$d" 2>/dev/null || \
	  { [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo rm -rf "$$d"; } || \
	  { echo "could not remove $$d/ (files owned by another user?)" >&2; exit 1; }; \
	done
