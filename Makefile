# LLM Analytics Hub: developer commands. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
UV_COMPILE := $(UV) pip compile --quiet --python 3.11 --universal

.PHONY: help setup test test-unit lint fmt lock up down status airflow run dbt-dev bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Create or update .venv from the lock (fast when nothing changed)
	@scripts/bootstrap

# Two workers; the integration tests go a file at a time (module fixtures stay in one
# process): most wait on a subprocess (Airflow, dbt, PostgreSQL), so the second core is
# otherwise idle.
TEST_WORKERS ?= 2

test-unit: setup ## Unit tests only: no service, no network (under a minute)
	$(BIN)/pytest -m "not integration" --disable-socket --allow-unix-socket -n $(TEST_WORKERS) $(PYTEST_ARGS)

test: test-unit ## The unit tests, then the rest (starts its own PostgreSQL, S3, simulators)
	$(BIN)/pytest -m integration -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: setup ## ruff check, ruff format --check, mypy, lint-imports (product vs dev/)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: setup ## Fix what ruff can, then format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: ## Re-compile the locks (requirements*.txt) from the .in files
	$(UV_COMPILE) requirements-dev.in -o requirements-dev.txt
	$(UV_COMPILE) requirements.in -c requirements-dev.txt -o requirements.txt
	$(UV_COMPILE) requirements-dbt.in -o requirements-dbt.txt

up: setup ## Start the private PostgreSQL cluster (.local/pg) and print its DSN
	$(BIN)/python -m hub_dev up

down: setup ## Stop the private PostgreSQL cluster
	$(BIN)/python -m hub_dev down

status: setup ## Is the private PostgreSQL cluster running?
	$(BIN)/python -m hub_dev status

airflow: setup ## Run Airflow (standalone) on the private cluster; UI at http://localhost:8080
	$(BIN)/python -m hub_dev airflow

run: setup ## Run the main job end to end
	$(BIN)/python -m hub_dev.main_job

dbt-dev: setup ## A dev warehouse with 3 days of simulated data, then dbt build and docs
	$(BIN)/python -m hub_dev.dbt_dev $(DBT_DEV_ARGS)

bench: setup ## Run the benchmarks in bench/
	@shopt -s nullglob; for script in bench/[!_]*.py; do \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done

clean: ## Stop local services and remove caches and local state (.local/, not .venv)
	-@[[ -x $(BIN)/python ]] && $(BIN)/python -m hub_dev down
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache dbt_project/target dbt_project/logs
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
