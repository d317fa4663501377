# Quick start: `make demo` runs the main job end to end on the bundled real data; `make test` runs the tests.
# Both create .venv (Python 3.11+) from this repository's own files when it is missing.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install demo test
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m flows.demo

# The DICOM-peer tests judge our files with dciodvfy/dcmtk and talk to a real Orthanc (Debian packages).
test: $(STAMP)
	bash scripts/install_test_tools.sh
	$(VENV)/bin/python -m pytest -n 2 -q
