# dunning: the project's vocabulary. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
LOCK_VENV := .venv-lock
export PYTHONPATH := .:shared:tools
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
PIP_QUIET := --quiet --disable-pip-version-check


.PHONY: help env envs demo test unit lint typecheck validate policy-check pytest e2e bench build deploy lock clean

help:
	@echo "make demo      deploy template.yaml into in-process moto and simulate 5 days of a 200-loan book"
	@echo "make test      lint, type-check, template checks, policy lint and every test"
	@echo "make unit      the fast unit tier: pure core and in-memory fakes, no AWS (under 10 s)"
	@echo "make e2e       plan -> send -> record against a deployed stack (AWS_SAM_STACK_NAME)"
	@echo "make bench     benchmarks (composition, planning at scale, cold init, AWS calls per SMS)"
	@echo "make build     sam build (python3.13 from pyenv)"
	@echo "make deploy    sam deploy --guided"
	@echo "make lock      recompile shared/requirements.txt (hashes) from shared/requirements.in"

env: $(VENV)/.installed $(VENV)/bin/dunning

# The `dunning` console command: the project itself, editable (its packages are shared/dunning, the
# layer's, and tools/dunning_tools, the command's), without dependencies (requirements-dev.txt has them).
$(VENV)/bin/dunning: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install $(PIP_QUIET) --no-deps --editable . 2> >(grep -v "is ignored: it is neither" >&2)
	touch $@

# The three environments are independent: create them side by side.
envs:
	@$(MAKE) --no-print-directory -j3 $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	@$(MAKE) --no-print-directory $(VENV)/bin/dunning

$(VENV)/.installed: requirements-dev.txt shared/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) --require-hashes -r shared/requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
	$(PY) -m pip install $(PIP_QUIET) -r requirements-dev.txt -c <(sed -nE 's/^([A-Za-z0-9._-]+==[^ ]+).*/\1/p' shared/requirements.txt) \
	  2> >(grep -v "is ignored: it is neither" >&2)
	touch $@

# aws-sam-cli pins older boto3 and pydantic; checkov conflicts with it: each gets its own venv.
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install $(PIP_QUIET) aws-sam-cli==1.170.0 2> >(grep -v "is ignored: it is neither" >&2)
	touch $@

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install $(PIP_QUIET) checkov==3.3.30 2> >(grep -v "is ignored: it is neither" >&2)
	touch $@

demo: env
	$(PY) -m dunning_tools.cli demo

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: env
	$(VENV)/bin/mypy shared/dunning tools/dunning_tools functions

policy-check: env
	$(PY) -m dunning_tools.cli policy check shared/dunning/default_policy.yaml

validate: env $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml
	@# checkov does not expand Fn::ForEach (it would skip those resources and SAM's Globals): it reads the expansion.
	$(PY) -c 'import sys; from dunning_tools.local.language_extensions import main; sys.exit(main())' \
	  template.yaml .aws-sam/template.expanded.json
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml --file .aws-sam/template.expanded.json

# Never against a deployed stack: tests/e2e skips, saying so, without AWS_SAM_STACK_NAME.
pytest: env
	env -u AWS_SAM_STACK_NAME $(PY) -m pytest -q -n 2

# The fast tier: tests/unit without the hypothesis-heavy tests and the template checks (tests/unit/conftest.py).
# Bytecode is cached, as Python does by default: without it every run recompiles the package and rewrites asserts.
unit: env
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest tests/unit -q -m "not slow and not template"

# A deployed (staging) stack; the SMS goes to DUNNING_E2E_PHONE, a number verified in the SNS SMS sandbox.
e2e: env
	@test -n "$$AWS_SAM_STACK_NAME" || { echo "make e2e needs AWS_SAM_STACK_NAME=<a deployed stack> (and DUNNING_E2E_PHONE)" >&2; exit 2; }
	$(PY) -m pytest -q tests/e2e

test: envs
	@$(MAKE) --no-print-directory lint typecheck policy-check validate pytest

bench: env
	$(PY) benchmarks/run.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/send_path.py
	$(PY) benchmarks/simulate.py

build: $(SAM_VENV)/.installed
	@py313=$$(ls -d "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin 2>/dev/null | tail -1); \
	if [ -z "$$py313" ] && ! command -v python3.13 >/dev/null; then \
	  echo "sam build needs python3.13 for the python3.13 runtime (e.g. pyenv install 3.13)" >&2; exit 1; fi; \
	PATH="$${py313:+$$py313:}$$PATH" $(SAM_VENV)/bin/sam build --language-extensions --template template.yaml

deploy: build
	$(SAM_VENV)/bin/sam deploy --guided

# pip-tools on python3.13, the functions' runtime, so the lock resolves as `sam build` installs it.
$(LOCK_VENV)/.installed:
	@py313=$$(ls -d "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13 2>/dev/null | tail -1); \
	py313=$${py313:-$$(command -v python3.13)}; \
	if [ -z "$$py313" ]; then echo "make lock needs python3.13, the functions' runtime (e.g. pyenv install 3.13)" >&2; exit 1; fi; \
	"$$py313" -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install $(PIP_QUIET) pip-tools==7.6.2 2> >(grep -v "is ignored: it is neither" >&2)
	touch $@

# Keeps the pins it can; `make lock LOCK_ARGS=--upgrade` moves every pin to the newest allowed.
lock: $(LOCK_VENV)/.installed
	cd shared && CUSTOM_COMPILE_COMMAND="make lock" ../$(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes \
	  --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) \
	  --output-file requirements.txt requirements.in 2> >(grep -v "is ignored: it is neither" >&2)

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(LOCK_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
