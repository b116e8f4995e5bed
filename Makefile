# touchflow — `make demo` and `make test` each bootstrap .venv on a fresh machine (uv when present,
# else venv + pip from the exported lock), then run.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all demo test lint typecheck unit page screenshot bench lock clean

all: test

$(STAMP): pyproject.toml uv.lock requirements.lock
	@if command -v uv >/dev/null 2>&1; then \
		echo "bootstrapping $(VENV) with uv"; \
		uv sync --frozen --extra dev; \
	else \
		echo "bootstrapping $(VENV) with venv + pip"; \
		python3 -m venv $(VENV) && \
		$(PY) -m pip install -q --upgrade pip && \
		$(PY) -m pip install -q -r requirements.lock && \
		$(PY) -m pip install -q --no-deps -e . ; \
	fi
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/touchflow demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck unit

# The scorecard page alone: HTTP tests and the headless-chromium tests (Debian's chromium and
# chromium-driver: apt-get install chromium chromium-driver).
page: $(STAMP)
	$(PY) -m pytest tests/page tests/connectors/test_metrics_server.py $(PYTEST_ARGS)

# The README's screenshot of the page (tests/page/scorecard.png), from a simulated week.
screenshot: $(STAMP)
	$(PY) -m tests.page.screenshot

bench: $(STAMP)
	$(PY) benchmarks/bench_capcheck.py
	$(PY) benchmarks/bench_dataflow.py
	$(PY) benchmarks/bench_live.py
	$(PY) benchmarks/sim_adaptive.py

# Re-pin dependencies after editing pyproject.toml (needs uv).
lock:
	uv lock
	uv export --frozen --extra dev --no-hashes --no-emit-project -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
