# LLM Book: `make book` builds the HTML book, `make test` runs every test.
# Both create their own virtual environment in .venv with the pinned packages.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help env book test lab lock clean

help:
	@echo "make book   build the HTML book into book/_build/html (executes every chapter)"
	@echo "make test   run every test: package, notebooks (nbval), book build, browser"
	@echo "make lab    open the chapters in JupyterLab"
	@echo "make clean  remove the build and the virtual environment"

env: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements-lock.txt -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (LLM Book)" >/dev/null
	touch $@

book: env
	$(VENV)/bin/jupyter-book build book --all --warningiserror --keep-going
	@echo "Open book/_build/html/index.html"

test: env
	$(PY) -m pytest tests book/chapters --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg

lab: env
	$(VENV)/bin/jupyter lab book/chapters

# Refresh the full lock after changing a pin in pyproject.toml.
lock: env
	{ echo "# Full, exact environment the book's stored outputs come from (pip constraints)."; \
	  echo "# Regenerate with: make lock"; \
	  $(PY) -m pip freeze --exclude-editable | sed 's/+cpu//'; } > requirements-lock.txt

clean:
	rm -rf book/_build $(VENV)
