# The whole setup is `make run` or `make test`; every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export TOKENIZERS_PARALLELISM := false

.DEFAULT_GOAL := help
.PHONY: help install run index test lint eval bench bench-quality clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install collab-qa with its dev tools (skipped when up to date)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing into $(VENV) (CPU torch first, then collab-qa)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

run: install ## Build the index if needed and serve the chat on http://127.0.0.1:8000
	$(BIN)/collab-qa serve

index: install ## Build or update the index from corpus/
	$(BIN)/collab-qa index

test: install lint ## Run ruff, mypy and the whole test suite (real model included)
	$(BIN)/python -m pytest

lint: install ## ruff and mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

eval: install ## Run the eval question set in every mode and write eval/report/
	$(BIN)/collab-qa eval eval/questions.jsonl --mode all --report eval/report

bench: install ## Speed benchmarks; results go to bench/results/
	$(BIN)/python -m bench

bench-quality: install ## BEIR SciFact benchmark from ../shared/benchmarks/scifact (slow)
	$(BIN)/collab-qa eval --beir ../shared/benchmarks/scifact --mode all

clean: ## Remove the virtualenv and the built index
	rm -rf $(VENV) index/CURRENT index/v* index/.tmp-*
