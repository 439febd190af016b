# The two commands of the README: `make lab` and `make test`. Both start from a bare Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test unit install lint notebook clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)           ## every lab on a private embedded Redis, then results/REPORT.md
	$(BIN)/celery-lab run all $(ARGS)

test: $(STAMP)          ## the kit, every lab's findings, the notebooks, the static compose check
	$(BIN)/python -m tests.both $(ARGS)

unit: $(STAMP)          ## the fast tier: the kit's pure parts and every check's counter-examples (no Redis)
	$(BIN)/python -m pytest tests/unit $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

notebook: $(STAMP)      ## Jupyter Lab on the notebooks (installs jupyterlab into .venv)
	$(BIN)/python -m pip install --quiet -e '.[dev,jupyter]'
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache *.egg-info
