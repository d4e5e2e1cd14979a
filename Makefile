# Two commands for a newcomer: `make run` and `make test`. Both set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP_INSTALL := $(VENV)/.installed
PROTO_FILES := $(shell find protos -name '*.proto' 2>/dev/null)

.PHONY: run test install protos check-protos lint buf deploy-check pytest clean migration

run: protos
	$(BIN)/portal up

test: protos check-protos lint buf deploy-check pytest

$(PY):
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed (found %s)" % sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_INSTALL): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP_INSTALL)

# Generated Python code (messages, stubs and typed .pyi) lives under portal/<service>/v1 and is never edited by hand.
protos: $(STAMP_INSTALL) portal/.protos-stamp

portal/.protos-stamp: $(PROTO_FILES) tools/gen_protos.py $(STAMP_INSTALL)
	$(PY) tools/gen_protos.py --out .
	touch $@

# Fails when the generated code on disk is not what the protos produce now.
check-protos: protos
	$(PY) tools/gen_protos.py --check .

lint: $(STAMP_INSTALL)
	$(BIN)/ruff check .

buf: $(STAMP_INSTALL)
	$(PY) tools/buf_checks.py

# The deploy files, proven offline: hadolint on the Dockerfile, the Compose spec's JSON schema on compose.yaml,
# both kustomize overlays rendered and strictly validated (tools/deploy_checks.py; tests/deploy checks the rules).
deploy-check: $(STAMP_INSTALL)
	$(PY) tools/deploy_checks.py

pytest: protos
	$(BIN)/pytest -q

# make migration SERVICE=accounts MSG="add links"
migration: protos
	$(BIN)/portal makemigration $(SERVICE) -m "$(MSG)"

clean:
	rm -rf $(VENV) var portal/common portal/accounts portal/imports portal/notify portal/.protos-stamp
