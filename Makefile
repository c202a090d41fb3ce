# The README's commands. Each target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pytest-xdist processes for make test (each test module runs whole in one of them). 0, the default,
# runs the suite in one process: on a 2-core machine, 2 halve its time (18.6 to 11.5 min) but starve the
# timing- and memory-bound tests (a browser click timeout, an RSS bound) often enough to fail CI.
TEST_WORKERS ?= 0

.PHONY: run run-scaled test test-latest bench lint check clean system-packages lock package-check

run: $(VENV)/.runtime  ## Gateway, simulator and dashboard on the embedded defaults (Procfile, honcho)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start

run-scaled: $(VENV)/.runtime  ## Redis + a gateway of PULSE_WORKERS (2) worker processes on :8000 + simulator + dashboard
	@command -v redis-server >/dev/null 2>&1 || { echo "run-scaled needs redis-server (apt-get install redis-server)"; exit 1; }
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho -f Procfile.scaled start

test: $(VENV)/.dev system-packages  ## Lint, type-check and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

# The upgrade canary: the transport builds on uvicorn's protocol interface and websockets' sans-I/O
# protocol, the dashboard on Streamlit. Their newest releases, in a venv of their own, against the tests
# of those seams, so that drift shows the day a release comes out (CI runs it without failing on it).
LATEST := .venv-latest
CANARY_PACKAGES := uvicorn websockets starlette fastapi streamlit
CANARY_TESTS := tests/test_transport.py tests/test_wire.py tests/test_ws_protocol.py \
	tests/test_hostile_handshakes.py tests/test_dashboard_app.py

test-latest: system-packages  ## The newest uvicorn, websockets, starlette, fastapi and streamlit against the transport, protocol and dashboard tests
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet -r requirements-dev.txt
	$(LATEST)/bin/python -m pip install --quiet --upgrade $(CANARY_PACKAGES)
	@$(LATEST)/bin/python -m pip list 2>/dev/null | grep -iE '^(uvicorn|websockets|starlette|fastapi|streamlit) '
	$(LATEST)/bin/python -m pytest -q -p no:cacheprovider $(CANARY_TESTS)

bench: $(VENV)/.dev system-packages  ## Quick runs of every benchmark (under 5 minutes); full commands in docs/benchmarks.md
	$(BIN)/python -m bench.fanout --quick
	$(BIN)/python -m bench.ingest --quick
	$(BIN)/python -m bench.broker_throughput --quick
	$(BIN)/python -m bench.dashboard_render --quick
	$(BIN)/python -m bench.dashboard_buffers --quick

# The lock files: requirements.txt (what make run installs: every extra but dev) and requirements-dev.txt
# (everything, constrained to the same runtime pins), compiled from pyproject.toml's ranges by pip-tools
# in a venv of its own. pip-compile keeps a pin that still fits; make lock UPGRADE=1 takes the newest.
LOCK_VENV := .venv-lock
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --strip-extras \
	--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)

lock:  ## Regenerate requirements.txt and requirements-dev.txt from pyproject.toml
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip pip-tools==7.7.0
	$(PIP_COMPILE) --extra redis --extra postgres --extra dashboard --extra mqtt --extra run \
		-o requirements.txt pyproject.toml
	$(PIP_COMPILE) --all-extras --constraint requirements.txt \
		--unsafe-package pulseboard -o requirements-dev.txt pyproject.toml

package-check:  ## Build the wheel, install it in a fresh venv outside the checkout, publish and receive through pulse-gateway
	$(PYTHON) scripts/package_check.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The tests start their own redis-server, PostgreSQL cluster and Mosquitto (never the machine's own), drive Debian's
# Chromium (Playwright never downloads a browser here) and read socket buffers with ss: install the
# Debian packages that are missing.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v ss >/dev/null 2>&1 || missing="$$missing iproute2"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the tests:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

clean:
	rm -rf $(VENV) $(LATEST) $(LOCK_VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache data

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.runtime: requirements.txt $(VENV)/.created
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@
