# dl2424 — the commands a user types. `make demo` and `make test` work from a fresh clone.
VENV   ?= .venv
PY     := $(VENV)/bin/python
DL     := $(VENV)/bin/dl2424
# Use the course datasets beside the project when they are there (development copy).
DL2424_DATA_DIR ?= $(shell [ -d ../shared/datasets ] && cd ../shared/datasets && pwd)
export DL2424_DATA_DIR

.PHONY: install test test-fast demo bench lint readme clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,cluster,torch,tensorboard]'
	touch $@

test: install
	$(PY) -m pytest -q -p no:cacheprovider

# The inner loop: everything but the tests marked slow (under a minute on a quiet machine).
test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

# The default experiment: the surname ConvNet of Assignment 3, then a few predictions. Without
# the names data, `train` downloads it (checksummed) or says the one command to run offline.
# DEMO_ARGS adds train options, e.g. make demo DEMO_ARGS="--set train.steps=2000".
demo: install
	$(DL) train configs/names_convnet.yaml $(DEMO_ARGS)
	$(DL) predict --name Xiong --name Gagos --name Corbetta --name Nakamura --name "O'Brien"

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# README's table of config keys, from the registry.
readme: install
	$(DL) config show --readme README.md

lint: install
	$(VENV)/bin/ruff check dl2424 tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
