# embconv — set-up, demo and tests. `make demo` then `make test` on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: venv test-deps demo test lint fuzz-long fixtures bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[data]'
	touch $@

venv: $(VENV)/.installed

# torch is pinned to the local CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml
	$(PIP) install -e '.[test]'
	touch $@

test-deps: $(VENV)/.test-installed

# The demo's SQL step uses DuckDB (a test dependency, not a runtime one).
demo: venv
	@$(PIP) install duckdb
	@$(PY) examples/demo.py

lint: test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

# 130,000 random damaged/hostile files and pieces (tests/test_fuzz.py); about 8 minutes.
fuzz-long: test-deps
	EMBCONV_FUZZ_LONG=1 $(PY) -m pytest -q tests/test_fuzz.py

# embconv against cp, torch.load + safetensors and gensim on synthetic collab files (not part of
# `make test`; needs ~5 GiB free at 1 GiB). BENCH_SIZE=256MiB for a quick run. See bench/README.md.
BENCH_SIZE ?= 1GiB
bench: test-deps
	$(PY) bench/bench_convert.py --size $(BENCH_SIZE)

# Regenerate the fastai fixtures (needs the fastai venvs; see tests/fixtures/README.md).
fixtures:
	bash tests/fixtures/make_venvs.sh
	bash tests/fixtures/generate.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo-out
