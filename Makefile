# imgbatch: `make run` serves on http://127.0.0.1:8000, `make test` runs every test.
# The first of the interpreters the package supports that this machine has.
PYTHON ?= $(firstword $(foreach p,python3.11 python3.12,$(shell command -v $(p))))
VENV := .venv
BIN := $(VENV)/bin
# What running needs (the package's own dependencies), then the test and bench tools.
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
# The JS tools, installed by `npm ci` from package-lock.json: ESLint checks the web page's
# scripts; newman runs docs/postman_collection.json in tests/test_postman.py.
NODE_STAMP := node_modules/.installed
ESLINT := node_modules/.bin/eslint

.PHONY: run test browser compose screenshots lint typecheck bench docs clean

# The lock pins every version; as constraints it installs only what is asked for.
$(RUNTIME): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "imgbatch needs python3.11 or python3.12 on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || (echo "npm is needed: make test lints the page's JS with ESLint" && false)
	npm ci --no-audit --no-fund
	touch $@

# The sample CSV points at demo photos this server hosts itself on loopback.
run: $(RUNTIME)
	IMGBATCH_ALLOW_PRIVATE_NETWORKS=$${IMGBATCH_ALLOW_PRIVATE_NETWORKS:-127.0.0.1:8000} $(BIN)/imgbatch serve

# The web page's tests drive Debian's Chromium (Playwright's own browser download is not used).
browser:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# The compose file is validated by the compose CLI (Debian's docker-compose; no daemon needed).
compose:
	command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y docker-compose)

test: $(STAMP) $(NODE_STAMP) browser compose
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
