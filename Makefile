# enlcn — reproducibility study of ENLCA/ENLCN (AAAI 2022).
#
#   make book        install (if needed), run notebooks/*.ipynb with papermill, build the Jupyter Book
#   make test        install (if needed), fast tests (pytest -m "not slow") + ruff
#
# torch is installed EXPLICITLY (torch==$(TORCH_VERSION)) before the project: a bare `torch` requirement
# with no torch installed would pull a multi-GB CUDA build from PyPI. GPU users pick a CUDA build with
#   make venv TORCH_VERSION=2.9.1 TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# (any version inside pyproject.toml's torch range).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON          ?= python3
VENV            ?= .venv
# The torch pin of the last successful `make venv` is remembered in $(VENV)/torch-pin.mk, so a GPU user's
# `make venv TORCH_VERSION=... TORCH_INDEX_URL=...` sticks for later `make test` / `make book` calls.
-include $(VENV)/torch-pin.mk
TORCH_VERSION   ?= 2.13.0
TORCH_INDEX_URL ?=
PROFILE         ?= cpu
PYTEST_ARGS     ?=
NOTEBOOKS       ?=
# extra papermill parameters, e.g. NB_PARAMS="train_missing=true" (train missing runs inside make book;
# the default never trains: `make study` does)
NB_PARAMS       ?=
# -W turns Sphinx warnings into errors (nothing is silently ignored), --keep-going reports all of them
# before failing, --all re-reads every page so a warning cannot hide in an incremental build.
JB_FLAGS        ?= --all -W --keep-going

PY  := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
KERNEL_NAME := enlcn
KERNEL := $(VENV)/share/jupyter/kernels/$(KERNEL_NAME)/kernel.json

# The install stamp is named after what the install depends on: pyproject.toml's content, the lock's and the
# torch pin. Editing any gives a new name, hence a reinstall; touching a file (or a fresh clone's mtimes) doesn't.
INSTALL_KEY := $(shell { cat pyproject.toml requirements/lock.txt; \
                         echo "torch=$(TORCH_VERSION) index=$(TORCH_INDEX_URL)"; } | sha256sum | cut -c1-16)
STAMP := $(VENV)/.stamp-$(INSTALL_KEY)

TORCH_INDEX_OPT := $(if $(strip $(TORCH_INDEX_URL)),--index-url $(TORCH_INDEX_URL),)

.PHONY: help venv lock test test-slow test-isa test-paper-smoke study lint book book-html results native gpu-check clean distclean

help:
	@echo "make book       run notebooks (papermill, PROFILE=$(PROFILE); NOTEBOOKS='a b' for a subset) and build"
	@echo "                the book into book/_build/html"
	@echo "make test       fast tests (not slow) + ruff"
	@echo "make test-slow  slow tests only (pytest -m slow)"
	@echo "make test-isa   the native kernels' tests at every instruction-set level this CPU runs (avx512, avx2,"
	@echo "                generic: ENLCN_ISA, with oneDNN, MKL and ATen capped alike; builds each level once)"
	@echo "make test-paper-smoke  the paper profile end to end on a tiny dataset (minutes)"
	@echo "make test-browser  every page of the built book in headless chromium, offline (apt-get install chromium)"
	@echo "make lint       ruff check"
	@echo "make venv       create/update $(VENV) (TORCH_VERSION=$(TORCH_VERSION) TORCH_INDEX_URL=$(TORCH_INDEX_URL))"
	@echo "make lock       re-resolve $(LOCK) (newest releases; LOCK_DATE=... reproduces a lock): commit it alone"
	@echo "make book-html  build the book from the notebooks the last make book executed (no papermill)"
	@echo "make results    recompute every committed result and check it against the committed numbers"
	@echo "                (kept when reproduced within enlcn.results' tolerance; rewritten when changed)"
	@echo "make study      train/resume the study's runs (PROFILE, STUDY_EXPERIMENTS, STUDY_JOBS=2 processes)"
	@echo "make gpu-check  the prepared GPU check (results/bench/gpu-check.json); GPU_CHECK_ARGS=--require-cuda"
	@echo "make gpu-study  the one-shot GPU study (tools/gpu_study.sh → bundle in \$$OUT; GPU_STUDY_ARGS=...)"
	@echo "make clean      remove book/_build, book/deviations.md and the executed notebooks in book/notebooks"
	@echo "make distclean  clean, and remove $(VENV) too"

# ---------------------------------------------------------------------------------------------- install
# The environment is LOCKED. requirements/lock.txt pins every package of pyproject.toml's runtime
# dependencies and its book and dev extras (and pip itself) to one version with its sha256 hashes, for Linux
# x86-64 and Python $(LOCK_PYTHON). `make venv` installs exactly that, hash-checked and without resolving
# (--require-hashes --no-deps), then torch==$(TORCH_VERSION), then the project without dependencies, and
# `pip check`s the result; $(VENV)/enlcn-lock.txt keeps a copy of the lock it installed (tests compare the
# environment with the lock where it exists). pyproject.toml keeps its ranges for people who install enlcn
# into an environment of their own.
# torch is NOT in the lock (nor nvidia-*/triton): the Makefile pins it itself, the CPU wheel here and a CUDA
# build for GPU users; its pure-Python dependencies are locked (as its CPU build declares them).
#
# `make lock` re-resolves the lock to the newest releases: a deliberate refresh, committed on its own and
# tested (make test, make book). It ignores releases after LOCK_DATE (default: now) and writes the date into
# the lock's header, so `make lock LOCK_DATE=<that date>` reproduces the committed lock later.
# It uses uv's `pip compile` rather than pip-tools' pip-compile: uv resolves for a stated target
# (--python-version, --python-platform) instead of whatever interpreter and pip configuration run it, takes
# torch's CPU-build dependencies from requirements/uv.toml (so no CUDA package enters the lock), filters by
# upload date (--exclude-newer), and resolves the ~170 packages in seconds. uv is pinned with its hashes in
# requirements/uv-tool.txt and installed by pip into $(VENV)/uv-$(UV_VERSION), outside the locked environment.
# `make venv` installs the lock with it too (same wheels, same hashes, ~15 s instead of pip's ~4 min: the
# largest part of a fresh clone's `make test`), compiling their bytecode as pip does (+~15 s once; without
# it, under PYTHONDONTWRITEBYTECODE every process compiles what it imports, +3.4 s per notebook kernel or
# test process); INSTALLER=pip installs it with pip instead (pip first).
LOCK          := requirements/lock.txt
LOCK_OUT      ?= $(LOCK)
LOCK_PYTHON   := 3.11
LOCK_PLATFORM := x86_64-manylinux_2_28
LOCK_TORCH    := $(shell sed -n 's/^torch==\([^ ]*\).*/\1/p' requirements/lock.in)
UV_VERSION    := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements/uv-tool.txt)
INSTALLER     ?= uv
TEST_JOBS     ?= 2
# what ruff checks, in `make test` and `make lint` alike
LINT_PATHS    := enlcn tests tools book/gen_deviations.py
UV            := $(VENV)/uv-$(UV_VERSION)/bin/uv
# the names the lock file $(1) pins, sorted
lock_names     = sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*\)==.*/\1/p' $(1) | LC_ALL=C sort
ifndef LOCK_DATE
LOCK_DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
endif

venv: $(STAMP)

$(STAMP):
	@test -x $(PY) || { echo ">> creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@v=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); [ "$$v" = "$(LOCK_PYTHON)" ] || \
	  echo ">> WARNING: Python $$v, but $(LOCK) is for Python $(LOCK_PYTHON) (PYTHON=python$(LOCK_PYTHON))" >&2
ifeq ($(INSTALLER),uv)
	@$(MAKE) --no-print-directory $(UV)
	@echo ">> installing exactly $(LOCK) with uv (hash-checked, no dependency resolution; bytecode compiled, as pip does)"
	$(UV) pip install --python $(PY) --compile-bytecode --require-hashes --no-deps -r $(LOCK)
else
	@echo ">> installing the lock's pip, then exactly $(LOCK) with it (hash-checked, no dependency resolution)"
	@awk '/^pip==/ {on = 1} on {print} on && !/\\$$/ {exit}' $(LOCK) > $(VENV)/lock-pip.txt
	$(PIP) install --require-hashes --no-deps -r $(VENV)/lock-pip.txt
	$(PIP) install --require-hashes --no-deps -r $(LOCK)
endif
	@# a package the previously installed lock had and this one drops goes too (as after a `make lock`)
	@if [ -f $(VENV)/enlcn-lock.txt ]; then \
	  gone=$$(comm -23 <($(call lock_names,$(VENV)/enlcn-lock.txt)) <($(call lock_names,$(LOCK)))); \
	  if [ -n "$$gone" ]; then echo ">> removing what the lock no longer has:" $$gone; \
	    $(PIP) uninstall --yes $$gone; fi; fi
	@echo ">> installing torch==$(TORCH_VERSION) (not in the lock: explicit pin, never a bare torch)"
	$(PIP) install $(TORCH_INDEX_OPT) "torch==$(TORCH_VERSION)"
	@echo ">> installing the project (editable; its dependencies are the lock's)"
	$(PIP) install --no-deps --no-build-isolation -e .
	$(PIP) check
	$(PY) -c "import torch; print('>> torch', torch.__version__, '| cuda available:', torch.cuda.is_available())"
	@rm -f $(VENV)/.stamp-*
	@printf 'TORCH_VERSION ?= %s\nTORCH_INDEX_URL ?= %s\n' "$(TORCH_VERSION)" "$(TORCH_INDEX_URL)" \
	  > $(VENV)/torch-pin.mk
	@cp $(LOCK) $(VENV)/enlcn-lock.txt
	@touch $@

$(UV):
	@test -x $(PY) || { echo ">> creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PIP) install --quiet --require-hashes --no-deps --target $(VENV)/uv-$(UV_VERSION) -r requirements/uv-tool.txt

lock: $(UV)
	$(UV) pip compile pyproject.toml requirements/lock.in --extra book --extra dev \
	  --config-file requirements/uv.toml --python-version $(LOCK_PYTHON) --python-platform $(LOCK_PLATFORM) \
	  --generate-hashes --no-emit-package torch --exclude-newer $(LOCK_DATE) --upgrade --quiet \
	  --custom-compile-command "make lock LOCK_DATE=$(LOCK_DATE)" -o $(LOCK_OUT).uv
	@{ echo "# enlcn's locked environment, made by \`make lock\` (see the Makefile). \`make venv\` installs"; \
	   echo "# exactly this (--require-hashes --no-deps), then torch==$(LOCK_TORCH) (not locked), then enlcn."; \
	   echo "# lock-python: $(LOCK_PYTHON)"; \
	   echo "# lock-platform: $(LOCK_PLATFORM)"; \
	   echo "# lock-torch: $(LOCK_TORCH)"; \
	   echo "# lock-date: $(LOCK_DATE)"; \
	   cat $(LOCK_OUT).uv; } > $(LOCK_OUT).tmp
	@rm -f $(LOCK_OUT).uv && mv $(LOCK_OUT).tmp $(LOCK_OUT)
	@echo ">> $(LOCK_OUT): $$(grep -c '^[a-z0-9]' $(LOCK_OUT)) packages, releases up to $(LOCK_DATE)." \
	  "A refresh is a commit of its own: make test (and make book) on it first."

# Jupyter kernel used by papermill, registered inside the venv so `-k enlcn` runs the venv's Python.
$(KERNEL): $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL_NAME) --display-name "Python (enlcn)"
	@touch $@

# ------------------------------------------------------------------------------------------------ tests
# The fast suite runs in TEST_JOBS processes (pytest-xdist, one file per process at a time, one math thread
# each: on two cores about 0.6× the time of one process); TEST_JOBS=0 runs it in this process.
test: $(STAMP) native
	$(if $(filter 0,$(TEST_JOBS)),,OMP_NUM_THREADS=1) $(PY) -m pytest -q -m "not slow and not paper_smoke" -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)
	$(PY) -m ruff check $(LINT_PATHS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

# the kernels' equality tests once per instruction-set level this CPU supports, each in a process run at the
# level (native.level_env: ENLCN_ISA and the oneDNN, MKL and ATen caps); tests/test_native_isa.py does the loop
test-isa: $(STAMP)
	$(PY) -m pytest -q -s -m slow tests/test_native_isa.py $(PYTEST_ARGS)

# the paper profile end to end on a tiny dataset in `enlcn data fetch`'s layout (tests/test_paper_smoke.py)
test-paper-smoke: $(STAMP)
	$(PY) -m pytest -q -m paper_smoke $(PYTEST_ARGS)

# every page of the built book in headless chromium, offline (tests/test_browser.py), after `make book`
# (the executed notebooks are build output); fails without Debian's chromium
.PHONY: test-browser
test-browser: book
	ENLCN_REQUIRE_BROWSER=1 $(PY) -m pytest -q -m browser $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)

# ------------------------------------------------------------------------------------------------- book
# `make book` = run every notebooks/*.ipynb with papermill (atomic writes into book/notebooks/, git-ignored),
# generate book/deviations.md from enlcn.variants, then build. The notebooks RENDER the committed results
# (enlcn.results: a result file that exists is read, not recomputed), so the build changes no tracked file.
# `make book-html` skips the papermill step; `make results` recomputes the results (below).
book: $(KERNEL) native
	$(PY) tools/run_notebooks.py --profile $(PROFILE) --kernel $(KERNEL_NAME) \
	  --input-dir notebooks --output-dir book/notebooks $(foreach p,$(NB_PARAMS),--param $(p)) $(NOTEBOOKS)
	$(PY) book/gen_deviations.py --output book/deviations.md
	$(VENV)/bin/jupyter-book build book $(JB_FLAGS)
	@echo ">> book: file://$(CURDIR)/book/_build/html/index.html"

# The native CPU kernels are compiled once per environment (torch's extension cache, ~1 min each) before the
# notebooks run, so that no page shows a build message; later calls only load them.
# The four compile in two processes at once (one compile uses one core); `make test` builds them here too.
native: $(STAMP)
	@$(PY) -c "from enlcn.attention import native as n; n.load(); n.load_contrastive()" & \
	  $(PY) -c "from enlcn.attention import native as n; n.load_attention(); n.load_enla_train()"; wait
	@$(PY) -c "from enlcn.attention import native as n; print('>> native kernels:', n.status(), '|', \
	  n.attention_status(), '|', n.enla_train_status(), '|', n.contrastive_status())"

# `make results` = the notebooks with recompute=true: every result is computed again and compared with the
# committed file; within the tolerance of enlcn.results the file is kept ("reproduced (max difference …)"),
# otherwise rewritten ("changed"); `git diff results/` then shows what changed. It never trains (`make study`).
results: $(KERNEL) native
	$(PY) tools/run_notebooks.py --profile $(PROFILE) --kernel $(KERNEL_NAME) --param recompute=true \
	  --input-dir notebooks --output-dir book/notebooks $(foreach p,$(NB_PARAMS),--param $(p)) $(NOTEBOOKS)

book-html: $(STAMP)
	$(PY) book/gen_deviations.py --output book/deviations.md
	$(VENV)/bin/jupyter-book build book $(JB_FLAGS)
	@echo ">> book: file://$(CURDIR)/book/_build/html/index.html"

# ------------------------------------------------------------------------------------------------ study
# Training is its own command: `make study` trains (or resumes) every run of STUDY_EXPERIMENTS under
# PROFILE in STUDY_JOBS one-thread processes that share the list (a run another process holds is skipped),
# logging to runs/<profile>/study-<job>.log. `make book` never trains: it shows what exists.
STUDY_EXPERIMENTS ?= table2 seeds k table6
STUDY_JOBS        ?= 2
study: $(STAMP)
	@mkdir -p runs/$(PROFILE)
	@for j in $$(seq 1 $(STUDY_JOBS)); do \
	  $(VENV)/bin/enlcn study $(STUDY_EXPERIMENTS) --profile $(PROFILE) --threads 1 --no-progress --skip-locked \
	    > runs/$(PROFILE)/study-$$j.log 2>&1 & \
	  sleep 5; \
	done; wait; tail -n 3 runs/$(PROFILE)/study-*.log

# ------------------------------------------------------------------------------------------- gpu check
GPU_CHECK_ARGS ?=
gpu-check: $(STAMP)
	PY=$(PY) tools/gpu_check.sh $(GPU_CHECK_ARGS)

# The one-shot GPU study (book/protocol.md, "Pre-registered: the one-shot GPU setting"): run on the lent GPU
# with the device's python3 (no venv, no installs); the bundle goes to $$OUT (GPU_STUDY_ARGS="--out DIR").
# Then, here: `enlcn study import DIR` re-scores it on the CPU and places it under results/gpu-x2/study/.
GPU_STUDY_ARGS ?=
.PHONY: gpu-study
gpu-study:
	tools/gpu_study.sh $(GPU_STUDY_ARGS)

# ----------------------------------------------------------------------------------------------- clean
clean:
	rm -rf book/_build book/deviations.md
	rm -f book/notebooks/*.ipynb
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
	rm -rf .pytest_cache .ruff_cache

distclean: clean
	rm -rf *.egg-info
	@if [ "$(VENV)" = ".venv" ]; then echo "rm -rf .venv"; rm -rf .venv; \
	 else echo ">> not removing VENV=$(VENV): only the project's own .venv is deleted"; fi
