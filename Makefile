# Kite: two commands do everything on a fresh machine (see README.md).
#   make demo   set up .venv, install, build the guest images, run the main job
#   make test   build, then run every test
#   make fuzz   random differential testing: COUNT programs (default 10000) from SEED (default random)
#   make bench  the speed figures and their goals (bench/README.md)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

SEED  ?=
COUNT ?= 10000

.PHONY: demo test build venv bench fuzz clean

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

bench: build
	$(BIN)/python bench/asm_throughput.py
	$(BIN)/python bench/machine_mips.py
	$(BIN)/python bench/exit_path.py
	$(BIN)/python bench/sim_speed.py

fuzz: $(STAMP)
	$(BIN)/python bench/fuzz.py $(if $(SEED),--seed $(SEED)) --count $(COUNT)

clean:
	rm -rf guestos/build
