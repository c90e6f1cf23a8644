PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi:app

.PHONY: run test lint schema bench replay clean

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "python3.11 not found; set PY=/path/to/python3.11"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.deps: requirements.txt $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.test-deps: requirements-test.txt requirements.txt $(VENV)/.deps
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@

run: $(VENV)/.deps
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo
	$(BIN)/flask run --host 127.0.0.1 --port 5000

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

# Regenerate the single initial migration from the models (before the first release only).
schema: $(VENV)/.deps
	rm -f migrations/versions/0001_initial.py instance/schema.db
	DATABASE_URL=sqlite:///schema.db $(BIN)/flask db upgrade
	DATABASE_URL=sqlite:///schema.db $(BIN)/flask db revision --autogenerate --rev-id 0001 -m initial
	mv migrations/versions/0001_initial.py migrations/versions/0001_initial.py 2>/dev/null || true
	rm -f instance/schema.db
	$(BIN)/ruff format --quiet migrations/versions/ || true

bench: $(VENV)/.test-deps
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) instance .pytest_cache
