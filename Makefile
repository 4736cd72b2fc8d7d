# Both targets build .venv from nothing, so they work on a fresh clone.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench flake clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,kind]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m rehearsal demo

# Three workers: the end-to-end rehearsals wait on subprocesses and on the simulated cluster's idle time
# part of the time, so three keep two cores busy; work stealing evens out the long rehearsals at the end.
# Tests sharing a rehearsal run share it across workers (tests/runs.py).
test: $(STAMP)
	$(VENV)/bin/python -m pytest tests -n 3 --dist worksteal

# Style, types and the import contracts between rehearsal/, kubesim/ and istiofacts/ (pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(VENV)/bin/python bench/sim_scale.py
	$(VENV)/bin/python bench/rehearsal.py

# Is the suite flaky? `make test` RUNS times from a fresh clone at COMMIT beside two busy loops (bench/flake.sh).
RUNS ?= 10
COMMIT ?= HEAD
flake:
	bench/flake.sh $(RUNS) $(COMMIT)

clean:
	rm -rf $(VENV) reports/run-* reports/latest
