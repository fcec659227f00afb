# The two commands a person needs: `make run` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
# pytest-xdist workers for `make test` (each gets its own throwaway databases and browser).
TEST_WORKERS ?= 2
FLASK := $(BIN)/flask --app wsgi
PYBABEL := $(BIN)/pybabel
CHROMIUM ?= /usr/bin/chromium

.DEFAULT_GOAL := help
.PHONY: help run serve test lint format migrate seed worker i18n-extract i18n-update i18n-compile i18n-check i18n-init test-deps browser clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@# Flask-Migrate was replaced by our own `flask db` commands; in a virtualenv made before,
	@# its plugin would shadow them.
	@$(BIN)/pip uninstall --quiet --yes flask-migrate 2>/dev/null || true
	touch $@

$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-run
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.stamp-run i18n-compile migrate seed ## Install, migrate, seed the demo and serve on http://127.0.0.1:$(PORT)
	@echo "Serving on http://127.0.0.1:$(PORT) (demo: demo@example.com / demo-password)"
	BASE_URL=$${BASE_URL:-http://127.0.0.1:$(PORT)} $(FLASK) run --host 127.0.0.1 --port $(PORT)

serve: $(VENV)/.stamp-run i18n-compile ## gunicorn (WEB_WORKERS=3), an RQ worker and the sweeper; needs DATABASE_URL and REDIS_URL
	BIN=$(BIN) PORT=$(PORT) scripts/serve.sh

migrate: $(VENV)/.stamp-run ## Apply database migrations
	$(FLASK) db upgrade

seed: $(VENV)/.stamp-run ## Create the demo accounts and data (does nothing the second time)
	$(FLASK) demo seed

worker: $(VENV)/.stamp-run ## Run a background worker (RQ when REDIS_URL is set)
	$(FLASK) jobs work

test: test-deps lint i18n-check i18n-compile ## Install test needs (Chromium included), lint, check the catalogs, run every test
	$(BIN)/pytest -n $(TEST_WORKERS)

test-deps: $(VENV)/.stamp-test browser

browser: $(VENV)/.stamp-test ## Make sure a Chromium for the browser tests is there
	@if [ -x "$(CHROMIUM)" ]; then \
		echo "Chromium: $(CHROMIUM)"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "Installing Chromium from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "Installing Playwright's own Chromium"; \
		$(BIN)/playwright install chromium; \
	fi

lint: $(VENV)/.stamp-test ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.stamp-test ## Format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

i18n-extract: $(VENV)/.stamp-run ## Collect translatable text into translations/messages.pot
	$(PYBABEL) -q extract -F babel.cfg -k _l -k lazy_gettext -k _n:1,2 --sort-by-file \
		--project "Privacy Center" --copyright-holder "Privacy Center" \
		--msgid-bugs-address privacy@example.com -o translations/messages.pot .

i18n-update: i18n-extract ## Merge new text into every locale's catalog
	$(PYBABEL) -q update --no-fuzzy-matching --ignore-obsolete -i translations/messages.pot -d translations
	$(BIN)/python scripts/fill_source_catalog.py translations/en/LC_MESSAGES/messages.po

i18n-compile: $(VENV)/.stamp-run ## Compile the catalogs (.po to .mo)
	$(PYBABEL) -q compile --statistics -d translations

i18n-check: $(VENV)/.stamp-run ## Fail on a catalog msgfmt rejects, a gap in a shipped locale, or a stale .pot
	$(BIN)/python scripts/check_catalogs.py

i18n-init: i18n-extract ## Start a new locale: make i18n-init LOCALE=fr
	@test -n "$(LOCALE)" || (echo "usage: make i18n-init LOCALE=fr" && exit 2)
	$(PYBABEL) init -i translations/messages.pot -d translations -l $(LOCALE)

clean: ## Remove the virtualenv and local data (instance/)
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
