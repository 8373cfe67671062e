# avlab: two commands do everything on a fresh Debian machine.
#   make demo   set up, then run the whole pipeline on the simulated lab
#   make test   set up, then run the test suite
#   make bench  set up, then run the benchmarks (long; results in bench-out/)
# Idempotent: the venv is rebuilt only when pyproject.toml changes, Debian
# packages are installed only when missing and only when run as root.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.avlab-installed
# Debian packages the pipeline needs at this stage (command -> package).
DEB_CMDS := unshare:util-linux ip:iproute2
# Keep liblsl on this machine's loopback for the demo, tests and benchmarks.
export LSLAPICFG := $(CURDIR)/avlab/data/lsl/loopback.cfg
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test bench lint setup sysdeps clean

setup: sysdeps $(STAMP)

sysdeps:
	@missing=""; for pair in $(DEB_CMDS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (run 'sudo apt-get install$$missing' or make as root)"; fi; \
	fi

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found. Fix: install Python 3.11 (apt-get install python3.11 python3.11-venv)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/avlab demo demo-out

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --timeout=300 tests

bench: setup
	$(PY) benchmarks/run_all.py --out bench-out

lint: setup
	$(VENV)/bin/ruff check avlab tests benchmarks
	$(VENV)/bin/ruff format --check avlab tests benchmarks

clean:
	rm -rf $(VENV) demo-out bench-out
