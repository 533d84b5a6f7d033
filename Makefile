# xlt: two commands do everything on a fresh machine.
#   make tutorial   create .venv, install, execute every notebook (toy profile, offline) in place
#   make test       create .venv, install, run pytest on tests/ and nbval on notebooks/
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
PYTEST_ARGS ?=
EXTRAS ?= dev

# Offline by construction: the toy profile needs no network, and the hub clients must not retry.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export XLT_PROGRESS := 0
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: install tutorial test lint clean-nb benchmark calibrate book clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
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
	$(BIN)/python -m pytest tests $(NOTEBOOKS) --nbval --nbval-current-env \
	  --nbval-sanitize-with notebooks/nbval_sanitize.cfg --nbval-cell-timeout 900 -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check xlt_utils tests benchmarks notebooks

clean-nb: install
	$(BIN)/python -m xlt_utils.nbtools clean $(NOTEBOOKS)

benchmark: install
	$(BIN)/python benchmarks/toy_suite.py

calibrate: install
	$(BIN)/python benchmarks/toy_world.py

book: install
	$(BIN)/jupyter-book build --all book --warningiserror --keep-going

clean:
	rm -rf $(VENV) book/_build .pytest_cache
