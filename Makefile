# Two commands: `make demo` and `make test`. Both build the virtual environment themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	# uv resolves this set in seconds; pip's resolver took over 15 minutes here.
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m producer.demo

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

clean:
	rm -rf $(VENV) .pytest_cache
