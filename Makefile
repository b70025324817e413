# The two commands a new user needs: `make test` and `make demo`.
VENV ?= .venv
PY := $(VENV)/bin/python
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export GRADIO_ANALYTICS_ENABLED := False
export MPLBACKEND := Agg

.PHONY: test test-fast bench demo lint format install

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

test: install
	$(VENV)/bin/ruff check hill hill_core pipelines interaction_app tests benchmarks examples
	$(VENV)/bin/ruff format --check hill hill_core pipelines interaction_app tests benchmarks examples
	$(PY) -m pytest -q

# Everything but the slow, browser and integration tiers: the loop while editing code (< 30 s).
test-fast: install
	$(PY) -m pytest -q -n auto -m "not slow and not browser and not integration"

# Every benchmark, one table, benchmarks/results.md (about 15 minutes; run it on a quiet machine).
bench: install
	$(PY) benchmarks/run_all.py $(if $(README),--readme docs/benchmarks.md)

# make demo AUTOPILOT=compactness answers the gates with a simulated user instead of a person.
demo: install
	$(VENV)/bin/hill demo $(if $(AUTOPILOT),--autopilot $(AUTOPILOT))

lint: install
	$(VENV)/bin/ruff check hill hill_core pipelines interaction_app tests benchmarks examples

format: install
	$(VENV)/bin/ruff format hill hill_core pipelines interaction_app tests benchmarks examples
	$(VENV)/bin/ruff check --fix hill hill_core pipelines interaction_app tests benchmarks examples
