# embconv — set-up, demo and tests. `make demo` then `make test` on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: venv test-deps demo test lint fuzz-long fixtures bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e .
	touch $@

venv: $(VENV)/.installed

# torch is pinned to the local CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml
	$(PIP) install -e '.[test]'
	touch $@

test-deps: $(VENV)/.test-installed

demo: venv
	@$(PY) examples/demo.py

lint: test-deps
	$(VENV)/bin/ruff check .

test: test-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# Regenerate the fastai fixtures (needs the fastai venvs; see tests/fixtures/README.md).
fixtures:
	bash tests/fixtures/make_venvs.sh
	bash tests/fixtures/generate.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo-out
