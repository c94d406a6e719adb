# Kite: two commands do everything on a fresh machine (see README.md).
#   make demo   set up .venv, install, build the guest images, run the main job
#   make test   build, then run every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test build venv bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

build: $(STAMP)
	$(BIN)/kite build

demo: build
	$(BIN)/kite demo

test: build
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/asm_throughput.py
	$(BIN)/python bench/machine_mips.py

clean:
	rm -rf guestos/build
