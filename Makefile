# Two commands: `make demo` and `make test`. Both build the virtual environment themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench bench-scale lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	# uv resolves this set in seconds; pip's resolver took over 15 minutes here. The dependencies'
	# bytecode is written now: where PYTHONDONTWRITEBYTECODE is set, every command would otherwise
	# compile boto3 and pydantic at each start (status: 1.3 s instead of 0.6 s).
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m producer.demo

bench: $(STAMP)
	$(PY) -m bench

bench-scale: $(STAMP)
	$(PY) -m bench.scale

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml

clean:
	rm -rf $(VENV) .pytest_cache

# -- Lambda package of WorkerFunction ------------------------------------------------------------
# `sam build` runs this (template.yaml: Metadata BuildMethod: makefile; samconfig.toml builds in
# source so .venv is not copied); `make build-WorkerFunction ARTIFACTS_DIR=/tmp/pkg` works too,
# and bench/package_size.py measures its result. Contents: worker/ and shared/, plus pyproject's
# main `dependencies` as python3.12 / aarch64 wheels (Lambda's python3.12 runs on Amazon Linux 2023,
# glibc 2.34), never built from source here, except:
#   boto3 botocore s3transfer - provided by the Lambda runtime;
#   earthaccess xarray        - declared by h5coro but imported only by its xarray backend, which the
#                               worker does not use (they would add pandas, s3fs, aiohttp: ~70 MB).
# Dropped from the wheels: mortie's 54 MB of test data (mortie/tests) and the stray top-level
# `tests` package h5coro installs.
LAMBDA_PYTHON_VERSION ?= 3.12
LAMBDA_PLATFORM ?= aarch64-manylinux_2_34
LAMBDA_EXCLUDES := boto3 botocore s3transfer earthaccess xarray
LAMBDA_UV ?= $(if $(wildcard $(VENV)/bin/uv),$(VENV)/bin/uv,uv)

.PHONY: build-WorkerFunction build-IndexFunction
build-IndexFunction: build-WorkerFunction  # one package, two handlers
build-WorkerFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)" >&2; exit 2; }
	printf '%s\n' $(LAMBDA_EXCLUDES) | $(LAMBDA_UV) pip install --target "$(ARTIFACTS_DIR)" \
		--python-platform $(LAMBDA_PLATFORM) --python-version $(LAMBDA_PYTHON_VERSION) \
		--only-binary :all: --excludes /dev/stdin -r pyproject.toml
	rm -rf "$(ARTIFACTS_DIR)/mortie/tests" "$(ARTIFACTS_DIR)/tests"
	cp -R worker shared "$(ARTIFACTS_DIR)/"
	find "$(ARTIFACTS_DIR)/worker" "$(ARTIFACTS_DIR)/shared" -name __pycache__ -prune -exec rm -rf {} +
