# The same commands locally and in CI. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV := .venv
SDK_VENV := .venv-sdk
PY := $(VENV)/bin/python
DATA ?= ./wg-data
PIPFLAGS ?= -q

.PHONY: run test lint unit bench docs clean sdk-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIPFLAGS) --upgrade pip
	$(PY) -m pip install $(PIPFLAGS) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install $(PIPFLAGS) -e '.[dev]'
	touch $@

# The official Azure IoT SDKs pin paho-mqtt<2, so they get a virtualenv of their own.
$(SDK_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install $(PIPFLAGS) 'azure-iot-device==2.14.0' 'azure-iot-hub==2.7.0' 'six==1.17.0'
	touch $@

sdk-venv: $(SDK_VENV)/.installed

run: $(VENV)/.installed
	@test -f $(DATA)/wellguard.toml || $(VENV)/bin/wellguard init --data $(DATA) --hostname localhost
	$(VENV)/bin/wellguard up --data $(DATA)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test: $(VENV)/.installed-dev $(SDK_VENV)/.installed lint
	WELLGUARD_SDK_PYTHON=$(abspath $(SDK_VENV))/bin/python $(PY) -m pytest $(PYTEST_ARGS)

unit: $(VENV)/.installed-dev
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(PY) bench/run_all.py

docs: $(VENV)/.installed
	$(PY) -m wellguard.apps.cli.reference > docs/cli.md

clean:
	rm -rf $(VENV) $(SDK_VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
