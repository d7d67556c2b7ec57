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

## make test: install, then every test, the notebook included (pytest --nbval), and the
## GradientMonitor tests under Keras's JAX backend in a process of their own
test: install
	$(BIN)/python -m pytest tests --nbval $(NOTEBOOK)
	KERAS_BACKEND=jax VGRAD_REQUIRE_JAX=1 $(BIN)/python -m pytest tests/test_monitor_jax.py

## make test-fast: the unit tests without the slow ones
test-fast: install
	$(BIN)/python -m pytest tests -m "not slow"

## make tutorial: on a fresh machine, install everything, execute the notebook in place, render the PDF
tutorial: install pdf-tools
	$(MAKE) notebook
	$(MAKE) pdf

## make notebook: execute the notebook in place (its outputs are what the PDF shows), storing no
## execution timestamps, so that running it again changes only the outputs that changed
notebook: install
	$(BIN)/python tutorial/execute_notebook.py $(NOTEBOOK)

## make pdf: render the PDF from the notebook as it is (XeLaTeX, pandoc: see make pdf-tools)
pdf: install
	$(BIN)/python tutorial/build_pdf.py $(NOTEBOOK) $(PDF)

## make pdf-tools: XeLaTeX, pandoc, poppler-utils and fonts by apt-get on Debian; elsewhere, say what to install
PDF_PACKAGES = texlive-xetex texlive-fonts-recommended texlive-plain-generic fonts-dejavu-core fontconfig pandoc poppler-utils
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
pdf-tools:
	@if command -v xelatex >/dev/null && command -v pandoc >/dev/null && command -v pdftotext >/dev/null \
	    && fc-list "DejaVu Sans Mono" | grep -q .; then \
	  echo "PDF tools present: xelatex, pandoc, poppler-utils, DejaVu fonts"; \
	elif command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(PDF_PACKAGES); \
	else \
	  echo "make pdf-tools: the PDF needs XeLaTeX, pandoc, poppler-utils and the DejaVu fonts;" >&2; \
	  echo "without apt-get, install them with your package manager." >&2; \
	  echo "Debian names: $(PDF_PACKAGES)" >&2; \
	  exit 1; \
	fi

demo: install
	$(BIN)/python -m vgrad demo

## make benchmark: probe, diagnose and monitor overheads, each a ratio measured side by side (A/B
## alternated, medians), and the verdicts on the test zoo (confusion matrix)
benchmark: install
	$(BIN)/python benchmarks/probe_speed.py
	$(BIN)/python benchmarks/diagnose_cost.py
	$(BIN)/python benchmarks/monitor_overhead.py
	$(BIN)/python benchmarks/monitor_overhead.py --backend jax
	$(BIN)/python benchmarks/tf_recording_schedule.py
	$(BIN)/python benchmarks/jax_executable_switch.py
	$(BIN)/python benchmarks/jax_recording_parts.py
	$(BIN)/python benchmarks/summary_writing.py
	$(BIN)/python benchmarks/verdict_accuracy.py

clean:
	rm -rf $(VENV) .pytest_cache
