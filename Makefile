# Two commands do all setup on a fresh machine (Python 3.11 or 3.12 and gcc needed):
#   make serve   install, then serve the default rule base on http://127.0.0.1:8000
#   make test    install (PostgreSQL, Java 17 for the Spark tests and Chromium for the report
#                pages, each unless the machine has it, from Debian, when run as root), then
#                run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/qualify serve

test: $(STAMP)
	bash tests/install-postgres.sh
	bash tests/install-java.sh
	bash tests/install-chromium.sh
	$(BIN)/ruff check qualify service tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
