# xlt: two commands do everything on a fresh machine.
#   make tutorial   create .venv, install, execute every notebook (toy profile, offline) in place
#   make test       create .venv, install, run pytest on tests/ and nbval on notebooks/
#   make lab        JupyterLab on 127.0.0.1:$(LAB_PORT) over notebooks/, kernel python3 = .venv's python
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
PYTEST_ARGS ?=
EXTRAS ?= dev
LAB_PORT ?= 8888
LAB_ARGS ?=

# Offline by construction: the toy profile needs no network, and the hub clients must not retry.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export XLT_PROGRESS := 0
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: install tutorial test lab lint clean-nb benchmark calibrate book clean

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

book: install
	$(BIN)/jupyter-book build --all book --warningiserror --keep-going

clean:
	rm -rf $(VENV) book/_build .pytest_cache
