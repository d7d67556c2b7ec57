# Two commands set everything up on a fresh machine: `make tutorial` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
NOTEBOOK = notebooks/vanishing_gradients_tutorial.ipynb
PDF      = tutorial/Vanishing_gradients.pdf
export TF_CPP_MIN_LOG_LEVEL = 2
export PYTHONHASHSEED = 0

.PHONY: install test test-fast tutorial notebook pdf pdf-tools demo benchmark clean

# The virtual environment is rebuilt whenever the pins or the package metadata change.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

## make test: install, then every test, the notebook included (pytest --nbval)
test: install
	$(BIN)/python -m pytest tests --nbval $(NOTEBOOK)

## make test-fast: the unit tests without the slow ones
test-fast: install
	$(BIN)/python -m pytest tests -m "not slow"

demo: install
	$(BIN)/python -m vgrad demo

benchmark: install
	$(BIN)/python benchmarks/probe_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
