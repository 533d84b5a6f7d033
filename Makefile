# xlt: two commands do everything on a fresh machine.
#   make tutorial   create .venv, install, execute every notebook (toy profile, offline) in place
#   make test       create .venv, install, run pytest on tests/ and nbval on notebooks/
#   make test-fast  the unit tests only (no notebook, book or browser; marker `slow` left out): ~2 min
#   make lab        JupyterLab on 127.0.0.1:$(LAB_PORT) over notebooks/, kernel python3 = .venv's python
#   make lock       recompile requirements/lock.txt (every package, with hashes) and environment.yml
#   make test-latest  the newest releases the package's ranges allow, in .venv-latest (not in CI)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
PYTEST_ARGS ?=
# nbval re-executes the stored notebooks and compares their outputs (make test, make test-latest)
NBVAL_ARGS := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg \
  --nbval-cell-timeout 900 -p no:cacheprovider
# The lock: every package of the install (dev and ray extras included), with versions and hashes, for
# CPython 3.11 on Linux x86-64. torch is its CPU build (2.13.0+cpu), found on PyTorch's CPU wheel page.
LOCK := requirements/lock.txt
TORCH_WHEELS ?= https://download.pytorch.org/whl/cpu/torch/
UV_VERSION := 0.13.9
LATEST_VENV ?= .venv-latest
LAB_PORT ?= 8888
LAB_ARGS ?=

# Offline by construction: the toy profile needs no network, and the hub clients must not retry.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export XLT_PROGRESS := 0
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: install tutorial test test-fast test-latest lock lab lint clean-nb benchmark calibrate book clean

# Exactly the lock (--require-hashes, --no-deps: nothing resolved at install time), then this package
# on top without its dependencies, then pip's consistency check.
# torch comes first, alone, since only it needs PyTorch's wheel page (asked once, not once a package).
$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	sed -n '/^torch==/,/--hash=[^\\]*$$/p' $(LOCK) > $(VENV)/torch-lock.txt
	$(BIN)/python -m pip install -q --require-hashes --no-deps --find-links $(TORCH_WHEELS) -r $(VENV)/torch-lock.txt
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

install: $(VENV)/.installed

tutorial: install
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; start=$$(date +%s); \
	  $(BIN)/papermill --no-progress-bar --cwd notebooks -k python3 $$nb $$nb || exit 1; \
	  echo "   $$(( $$(date +%s) - start )) s"; \
	done
	$(BIN)/python -m xlt_utils.nbtools clean $(NOTEBOOKS)

test: install
	$(BIN)/python -m pytest tests $(NOTEBOOKS) $(NBVAL_ARGS) $(PYTEST_ARGS)

# The fast lane: unit tests only (tests marked `slow` run chapters, books, browsers or trainings).
test-fast: install
	$(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider -q $(PYTEST_ARGS)

# The newest releases that pyproject.toml's ranges allow (torch stays at the CPU build this repository
# pins), in their own environment: the fast tests and the notebooks, so that an upstream release that
# breaks the package is found here before a learner on Colab finds it. The lock's own test is left out.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	echo "torch==2.13.0" > $(LATEST_VENV)/torch-pin.txt
	$(LATEST_VENV)/bin/python -m pip install -q --find-links $(TORCH_WHEELS) -r $(LATEST_VENV)/torch-pin.txt
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -c $(LATEST_VENV)/torch-pin.txt -e ".[dev]"
	$(LATEST_VENV)/bin/python -m pip check
	$(LATEST_VENV)/bin/python -m pip list --format=freeze | grep -iE '^(transformers|tokenizers|datasets|huggingface-hub|kernels|numpy)=='
	$(LATEST_VENV)/bin/python -m pytest tests $(NOTEBOOKS) -m "not slow" $(NBVAL_ARGS) \
	  --deselect tests/test_packaging.py::test_the_environment_is_exactly_the_lock $(PYTEST_ARGS)

# uv resolves pyproject.toml (all extras) under constraints.txt for CPython 3.11 on Linux x86-64, with
# hashes; requirements/environment.py then writes environment.yml from the lock. Upgrading: edit the
# ranges or constraints.txt (or nothing, to take the newest releases), run `make lock`, then
# `make test` (the venv reinstalls since the lock changed) and `make tutorial`.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q uv==$(UV_VERSION)
	.venv-lock/bin/uv pip compile pyproject.toml --extra dev --extra ray -c constraints.txt \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	  --find-links $(TORCH_WHEELS) --custom-compile-command "make lock" -o $(LOCK) --quiet
	.venv-lock/bin/python requirements/environment.py

# The chapters' kernel is `python3` (papermill -k python3 above); a server started from .venv runs it
# with .venv's python, and JUPYTER_PREFER_ENV_PATH keeps a user-wide `python3` kernelspec from
# shadowing it. The hub's offline switches and the quiet progress bars above are for the batch
# targets: in the lab a reader may switch a chapter to the quick profile, which downloads.
# LAB_ARGS passes more options, e.g. LAB_ARGS=--no-browser, or --allow-root in a container run as root.
lab: install
	env -u HF_HUB_OFFLINE -u HF_DATASETS_OFFLINE -u XLT_PROGRESS JUPYTER_PREFER_ENV_PATH=1 \
	  $(BIN)/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.root_dir="$(CURDIR)/notebooks" $(LAB_ARGS)

lint: install
	$(BIN)/ruff check xlt_utils tests benchmarks notebooks

clean-nb: install
	$(BIN)/python -m xlt_utils.nbtools clean $(NOTEBOOKS)

benchmark: install
	$(BIN)/python benchmarks/toy_suite.py

calibrate: install
	$(BIN)/python benchmarks/toy_world.py

# The chapters' diagrams (notebooks/figures/*.svg) must be what xlt_utils/diagrams.py draws (rewrite
# them with `python -m xlt_utils.diagrams`); the book's web fonts are vendored in book/_static/fonts
# (python book/fonts/vendor.py, from book/fonts/package-lock.json), so the build needs no npm.
book: install
	$(BIN)/python -m xlt_utils.diagrams --check
	$(BIN)/jupyter-book build --all book --warningiserror --keep-going

clean:
	rm -rf $(VENV) $(LATEST_VENV) .venv-lock book/_build .pytest_cache
