# Switchboard: the two commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup system-deps lint typecheck pytest docs bench mutants clean

## run: set up, migrate, load demo data and serve everything on http://127.0.0.1:8000
run: setup
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py seed_demo
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

## test: set up and run the whole suite, lint included
test: setup system-deps lint pytest

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy realtime
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

## docs: build the documentation site (mkdocs.yml, docs/) into site/; open site/index.html
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build

pytest: setup
	$(BIN)/python -m pytest

bench: setup system-deps
	$(BIN)/python bench/layers.py
	$(BIN)/python bench/chat_stack.py

## mutants: mutation testing (cosmic-ray) of the modules behind the reliability promises; slow,
## never part of `make test`. MUTANTS=presence (or fanout, delivery, worker, redis-layer) runs one.
mutants: setup system-deps
	BIN=$(abspath $(BIN)) bash scripts/mutants.sh $(MUTANTS)

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 var site
