# Set-up and the two README commands. `make train` runs the main job on the
# embedded digits; `make test` runs the whole suite. Both create the virtual
# environment first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv train test lint bench pretrained clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

train: venv
	$(BIN)/zoo train cnn

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check zoo training tests benchmarks

# Train every row of zoo/pretrained/recipes.json from scratch and publish
# it into zoo/pretrained (see docs/hub.md).
pretrained: venv
	$(BIN)/zoo hub rebuild

bench: venv
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) runs build *.egg-info
