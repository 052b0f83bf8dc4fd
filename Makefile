# Two commands on a fresh machine with Python 3.11:
#   make lab    set up .venv (torch 2.13.0 CPU and the course) and open JupyterLab on the course
#   make test   set up .venv if needed and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export PATH := $(abspath $(BIN)):$(PATH)

PORT ?= 8888
LAB_ARGS ?=
PYTEST_ARGS ?=

.PHONY: venv lab test build bench browser browser-deps sandbox-deps hub-deps hub hub-test kit clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: venv
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) --ServerApp.root_dir=$(CURDIR) $(ROOT_FLAG) $(LAB_ARGS)

build: venv
	$(BIN)/course build

bench: venv
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

test: venv browser-deps sandbox-deps hub-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# tests/test_browser.py drives JupyterLab and the exported web page in headless Chromium:
# Debian's package (Playwright's own browser download needs more than the package registries).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser-deps:
	command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

# Grading runs every submission's kernel inside bubblewrap (grader/sandbox): Debian's package.
sandbox-deps:
	command -v bwrap >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y bubblewrap)

# The course on a JupyterHub (grader/hub): Node.js for configurable-http-proxy, a Python 3.11
# every account can run (with venv), runuser and PAM (Debian's util-linux and login).
hub-deps:
	command -v npm >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs npm)
	(test -x /usr/bin/python3.11 && /usr/bin/python3.11 -c 'import ensurepip') || ($(SUDO) apt-get update && $(SUDO) apt-get install -y python3.11 python3.11-venv)

# make hub ROSTER=class.csv [HUB_ROOT=/srv/nn-course] [HUB_PORT=8000]: lay the hub out, then run it (root)
ROSTER ?=
HUB_ROOT ?= /srv/nn-course
HUB_PORT ?= 8000
hub: venv hub-deps
	@test -n "$(ROSTER)" || (echo "make hub ROSTER=class.csv: a CSV with a username column" && exit 2)
	$(BIN)/course hub setup --roster $(ROSTER) --root $(HUB_ROOT) --port $(HUB_PORT)
	$(BIN)/course hub start --root $(HUB_ROOT)

# the hub suite alone (a term's round trip in the browser, isolation, load), as root
hub-test: venv browser-deps sandbox-deps hub-deps
	$(BIN)/python -m pytest tests/test_hub.py $(PYTEST_ARGS)

# the students' distribution: dist/nn-by-hand-student/ and its .tar.gz
kit: venv
	$(BIN)/course kit --out dist

# the browser suite alone
browser: venv browser-deps
	$(BIN)/python -m pytest tests/test_browser.py $(PYTEST_ARGS)

clean:
	rm -rf submitted autograded feedback review logs gradebook.db .pytest_cache dist
