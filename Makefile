# The two set-up commands of the README:
#   make search   create .venv, install, get Fashion-MNIST, run a quick DARTS search (the main job)
#   make test     create .venv, install, run the test suite
# and the manual:
#   make docs     build it into build/site (MkDocs; the CLI and options pages come from the code)
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.14.1 torchvision==0.29.1
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: search test docs install data gpu-check

search: install data
	$(VENV)/bin/archsearch search darts_fashionmnist

test: install
	$(PY) -m pytest

docs: install
	$(VENV)/bin/mkdocs build --strict -d build/site

# On a machine with a CUDA GPU: environment, `pytest -m cuda`, archsearch bench, one epoch each of
# DARTS-1st / PC-DARTS / VIM-NAS search and of train_cifar10 (BENCHMARKS.md, "GPU check").
gpu-check: install
	$(PY) benchmarks/gpu_check.py results/gpu-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(TORCH)
	$(VENV)/bin/pip install --quiet -e '.[test,docs]'
	touch $@

# Debian ships Fashion-MNIST; elsewhere set data.root or pass data.download=true.
data:
	@if [ ! -d $(FMNIST) ] && command -v apt-get >/dev/null; then \
		apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist); \
	fi
