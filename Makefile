# imgbatch: `make run` serves on http://127.0.0.1:8000, `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The JS tools, installed by `npm ci` from package-lock.json: ESLint checks the web page's
# scripts; newman runs docs/postman_collection.json in tests/test_postman.py.
NODE_STAMP := node_modules/.installed
ESLINT := node_modules/.bin/eslint

.PHONY: run test browser screenshots lint typecheck bench docs clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || (echo "npm is needed: make test lints the page's JS with ESLint" && false)
	npm ci --no-audit --no-fund
	touch $@

# The sample CSV points at demo photos this server hosts itself on loopback.
run: $(STAMP)
	IMGBATCH_ALLOW_PRIVATE_NETWORKS=$${IMGBATCH_ALLOW_PRIVATE_NETWORKS:-127.0.0.1:8000} $(BIN)/imgbatch serve

# The web page's tests drive Debian's Chromium (Playwright's own browser download is not used).
browser:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: $(STAMP) $(NODE_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(ESLINT) .
	$(BIN)/pytest

# docs/screenshots/*.png of the web page, taken from a live server.
screenshots: $(STAMP) browser
	$(BIN)/python -m tests.screenshots

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Diagrams, the Postman collection, the OpenAPI schema and the API examples (a live server).
docs: $(STAMP)
	command -v dot >/dev/null || (apt-get update && apt-get install -y graphviz)
	$(BIN)/python docs/generate_diagrams.py
	$(BIN)/python docs/generate_postman.py
	$(BIN)/imgbatch openapi -o docs/openapi.json
	$(BIN)/python docs/generate_api_examples.py

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
