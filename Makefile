# LLM Book: `make book` builds the HTML book, `make test` runs every test.
# Both create their own virtual environment in .venv with the pinned packages.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
KERNEL := $(VENV)/share/jupyter/kernels/python3/kernel.json

NPM    ?= npm
ASSETS := node_modules/.package-lock.json

.PHONY: help env assets book test lab lock clean

help:
	@echo "make assets install the book's JavaScript (MathJax, require.js, widget manager, d3, jQuery) with npm ci"
	@echo "make book   build the HTML book into book/_build/html (executes every chapter)"
	@echo "make test   run every test: package, notebooks (nbval), book build, browser"
	@echo "make lab    open the chapters in JupyterLab"
	@echo "make student write student/: the chapters without solutions, as notebooks and HTML book"
	@echo "make grade  run the submitted notebooks in SUBMISSIONS=folder, write folder/grades.csv"
	@echo "make clean  remove the build and the virtual environment"

env: $(STAMP) $(KERNEL)

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements-lock.txt -e ".[dev]"
	touch $@

# The Jupyter kernel that `make lab` and `make book` run the chapters in. It computes with the
# same CPU kernels as the stored outputs (lmbook_utils.repro.PINNED_CPU_ENV), so that a
# reader's x86 machine with AVX2 computes the book's numbers, not its own last digits.
# The same settings are exported to `make book` and `make lab` themselves, in case another
# "python3" kernel (say, a user-wide one) shadows this one; the tests set them in conftest.py.
PINNED = $(PY) -c 'from lmbook_utils.repro import PINNED_CPU_ENV as e; print(*(f"$(1)" for k, v in e.items()))'

$(KERNEL): $(STAMP) lmbook_utils/repro.py
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (LLM Book)" \
		$$($(call PINNED,--env {k} {v})) >/dev/null

# The JavaScript the built book serves from its own folder, pinned in package.json
# and package-lock.json; book/_ext/lmbook_assets.py copies it into the build.
assets: $(ASSETS)

$(ASSETS): package.json package-lock.json
	@if command -v $(NPM) >/dev/null 2>&1; then \
		$(NPM) ci --ignore-scripts --no-audit --no-fund && touch $@; \
	else \
		echo "make assets: npm is not installed, so the book's JavaScript (MathJax, require.js,"; \
		echo "  the Jupyter widgets manager, d3, jQuery) cannot be installed into node_modules/."; \
		echo "  The book will load them from public CDNs: it works online only, and the"; \
		echo "  offline and browser tests fail. Install Node.js with npm, then run: make assets"; \
	fi

book: env assets
	env $$($(call PINNED,{k}={v})) $(VENV)/bin/jupyter-book build book --all --warningiserror --keep-going
	@echo "Open book/_build/html/index.html"

TEST_CMD = $(PY) -m pytest tests book/chapters --nbval --nbval-current-env \
	--nbval-sanitize-with tests/nbval_sanitize.cfg

# The tests run with the network switched off (a network namespace with only
# loopback, which Jupyter kernels need) when this machine allows it: user
# namespaces (`unshare -rn`, no root needed). .ci/run always switches it off
# itself and sets LMBOOK_NETWORK_OFF=1.
test: env assets
	@if [ "$$LMBOOK_NETWORK_OFF" = 1 ]; then \
		$(TEST_CMD); \
	elif unshare -rn sh -c 'ip link set lo up' >/dev/null 2>&1; then \
		echo "make test: network switched off (unshare -rn)"; \
		unshare -rn sh -c 'ip link set lo up && exec "$$@"' sh $(TEST_CMD); \
	else \
		echo "make test: cannot switch the network off here (no unshare -rn); running with it on"; \
		$(TEST_CMD); \
	fi

lab: env
	env $$($(call PINNED,{k}={v})) $(VENV)/bin/jupyter lab book/chapters

# The student edition (lmbook_utils/student.py): the chapters without the exercises' solutions
# (the cells of each :::{solution-start} ... :::{solution-end} gate), as notebooks to hand out
# (student/*.ipynb) and as an HTML book (student/html, built from the stored outputs, nothing
# executed). Grade the notebooks the students send back with `make grade`.
.PHONY: student
student: env assets
	$(PY) -m lmbook_utils.student --chapters book/chapters --book book --out student

# Grade a class (lmbook_utils/grading.py): `make grade SUBMISSIONS=path/to/folder` runs every
# notebook (*.ipynb) of the folder offline in the book's kernel, each with a time limit
# (GRADE_TIMEOUT=seconds, default 600), and writes path/to/folder/grades.csv: which exercise
# checks each submission passes, with the checks' messages.
.PHONY: grade
grade: env
	@if [ -z "$(SUBMISSIONS)" ]; then \
		echo "make grade: name the folder of submitted notebooks: make grade SUBMISSIONS=path/to/folder"; \
		exit 2; \
	fi
	$(PY) -m lmbook_utils.grading "$(SUBMISSIONS)" --out "$(SUBMISSIONS)/grades.csv" \
		$(if $(GRADE_TIMEOUT),--timeout $(GRADE_TIMEOUT))

# Refresh the full lock after changing a pin in pyproject.toml.
lock: env
	{ echo "# Full, exact environment the book's stored outputs come from (pip constraints)."; \
	  echo "# Regenerate with: make lock"; \
	  $(PY) -m pip freeze --exclude-editable | sed 's/+cpu//'; } > requirements-lock.txt

clean:
	rm -rf book/_build student $(VENV)
