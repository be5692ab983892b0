# The whole set-up on a fresh machine is `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
DATA ?= data
PEOPLE ?= 10000
# Synthetic data only: this demo key protects nothing and must never be used with real data.
DEMO_KEY := joinedup-DEMO-KEY-synthetic-data-only-do-not-use-with-real-data
SIZES ?= 10000 100000

.PHONY: run test lint format sync uv synth bench clean

uv:
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || \
	  (echo "installing uv ..." && python3 -m pip install --user --quiet uv)

sync: uv
	@$(UV) sync --locked --quiet

run: sync
	JOINEDUP_PSEUDONYMISATION_KEY=$${JOINEDUP_PSEUDONYMISATION_KEY:-$(DEMO_KEY)} \
	  $(UV) run --locked joinedup run --data-dir $(DATA) --demo-people $(PEOPLE)

synth: sync
	$(UV) run --locked joinedup synth --people $(PEOPLE) --seed 42 --out $(DATA)

test: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked pytest

lint: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

format: sync
	$(UV) run --locked ruff format .
	$(UV) run --locked ruff check --fix .

bench: sync
	$(UV) run --locked python -m benchmarks.run --sizes $(SIZES)

clean:
	rm -rf $(DATA)
