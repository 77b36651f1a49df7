# One-command set-up: every target that needs the project creates the virtual environment first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned here (not in pyproject) so a fresh machine takes the local CPU wheel instead of
# downloading a multi-GB CUDA build; users of the package may bring any torch in pyproject's range.
TORCH_PIN := torch==2.13.0

.PHONY: install build check demo test bench golden coverage mutants fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[test]' $(TORCH_PIN)
	touch $@

install: $(VENV)/.installed

build: install
	$(PY) -m generator build

check: install
	$(PY) -m generator check

demo: install
	$(PY) -m generator build
	$(PY) -m generator demo

# Two pytest-xdist workers: the suite is CPU-bound (inductor compiles the fused kernels), and CI
# has two cores; the parity report is merged from the workers (tests/conftest.py).
test: install
	$(PY) -m generator check
	$(PY) -m pytest -n 2

# Regenerate every golden output after an intended change: generated/ and the diagnostics' texts.
golden: install
	$(PY) -m generator build
	OPTIMGEN_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/test_diagnostics.py

# Branch coverage of generated/ by the suite, per implementation path (the fused kernels run
# uncompiled, so that their code is measured as Python).
coverage: install
	OPTIMGEN_EAGER_KERNELS=1 $(PY) -m coverage run --branch --source=generated \
		--data-file=.coverage-generated -m pytest -q -p no:xdist tests/ \
		--ignore=tests/test_user_project.py
	$(PY) tests/tools/path_coverage.py .coverage-generated

# The mutation score of the every-path-against-the-reference net over generated/.
mutants: install
	$(PY) tests/tools/mutants.py

# The compiler against itself, long: random valid specs on every path, compiled kernels.
fuzz: install
	$(PY) -m generator fuzz --programs 500

bench: install
	$(PY) -m generator bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
