# Novitrac: `make dev` runs the platform, `make test` tests it. Everything else is optional.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# uv is the only tool needed; when it is not on PATH it is installed with pip and run as a module.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_LINK_MODE ?= copy

.PHONY: help
help: ## show this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36mmake %-11s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## install uv if missing, then the locked environment (.venv)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv || \
		python3 -m pip install --quiet --user uv || \
		python3 -m pip install --quiet --break-system-packages uv
	@$(UV) sync --frozen --quiet --compile-bytecode
	@# Bytecode for our own packages too: where PYTHONDONTWRITEBYTECODE is set (CI machines), every
	@# process (each service a test starts, each CLI call) would otherwise compile them from source.
	@$(UV) run --frozen --no-sync python -m compileall -q -j 0 libs/*/src services/*/src sandbox/src >/dev/null

.PHONY: dev
dev: install ## run the whole platform in one process (embedded PostgreSQL, in-process bus)
	$(UV) run --frozen novitrac dev

.PHONY: stack
stack: install ## every service as its own process against the machine's PostgreSQL and RabbitMQ
	$(UV) run --frozen novitrac stack

.PHONY: test
test: install ## run every test (needs PostgreSQL on :5432 and RabbitMQ on :5672)
	$(UV) run --frozen pytest $(if $(SVC),services/$(SVC),) $(ARGS)

.PHONY: lint
lint: install ## ruff (lint + format check) and mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs services sandbox tests bench

.PHONY: web-test
web-test: ## test the web dashboard's modules with Node's built-in runner (Node 20+)
	node --test web/tests/

.PHONY: format
format: install ## apply ruff's fixes and formatting
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

.PHONY: contracts
contracts: install ## regenerate the committed JSON Schemas of the events
	$(UV) run --frozen python -m novitrac_contracts.schemas

.PHONY: migrate
migrate: install ## apply migrations (SVC=billing for one) to NOVITRAC_DATABASE_URL
	$(UV) run --frozen novitrac migrate $(SVC)

.PHONY: revision
revision: install ## autogenerate a migration: make revision SVC=billing m="add plans"
	$(UV) run --frozen novitrac revision $(SVC) -m "$(m)"

.PHONY: bench
bench: install ## run the bus benchmark (results go in bench/RESULTS.md by hand)
	$(UV) run --frozen python bench/bus.py
