# scnet — developer entry points. Every target works on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# Offline by default: nothing in the demo or the tests talks to the network.
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: venv install demo test test-slow test-all lint bench clean pg-server

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch is pinned here (not in pyproject) so pip takes the local CPU wheel instead of a
# multi-GB CUDA build; pyproject keeps an honest range.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	# W&B's sweep-config validator (tests of scnet-sweep --export wandb). It declares numpy<2
	# but works with numpy 2 (which pandas 3 needs): --no-deps keeps pip from downgrading numpy.
	# Its own dependencies (jsonschema, jsonref, pydantic, …) come with '.[dev]'.
	$(PIP) install -q --no-deps sweeps==0.3.0
	touch $(STAMP)

venv install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/scnet-run experiment=demo

test: $(STAMP)
	$(PY) -m ruff check scnet tests benchmarks
	$(PY) -m pytest -q -p no:cacheprovider

# The PostgreSQL sweep-storage test needs a local server (Debian's postgresql); install it when
# root with apt, else the test skips and says why.
pg-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && { apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }; } ; } || echo "pg-server: no PostgreSQL and no root apt-get: the PostgreSQL sweep test will skip"

test-slow: $(STAMP) pg-server
	$(PY) -m pytest -q -p no:cacheprovider -m slow

test-all: test test-slow

lint: $(STAMP)
	$(PY) -m ruff check scnet tests benchmarks
	$(PY) -m ruff format --check scnet tests benchmarks

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) outputs/runs outputs/sweeps outputs/reports .pytest_cache
