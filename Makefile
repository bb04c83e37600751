# genrec — two commands: `make demo` (set up, fetch ml-100k, train, serve) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev
# Editable for development; the Docker image installs with EDITABLE= (a normal install).
EDITABLE ?= -e
# Where a CPU build of torch==2.13.0 comes from when PyPI would give a CUDA one (Docker sets it).
TORCH_INDEX ?=
BUNDLE ?= artifacts/bundles/ml-100k
HOST ?= 127.0.0.1
PORT ?= 8000
API_KEY ?= demo-key-change-me
export GENREC_DATA_DIR ?= data

.PHONY: install demo train serve test lint bench-quality bench-studies bench-serving clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch==2.13.0
	$(BIN)/pip install --quiet $(EDITABLE) '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed

$(BUNDLE)/manifest.json: | install
	$(BIN)/genrec data fetch ml-100k
	$(BIN)/genrec train --dataset ml-100k --out $(BUNDLE)

train: $(BUNDLE)/manifest.json

demo: train
	@echo
	@echo "Serving $(BUNDLE) on http://$(HOST):$(PORT) (docs: http://$(HOST):$(PORT)/docs)."
	@echo "Demo page: http://$(HOST):$(PORT)/?user=196 (write key for clicks: $(API_KEY)). Or try:"
	@echo "  curl -X POST $(HOST):$(PORT)/v1/recommend -d '{\"user_id\":\"196\",\"k\":10}'"
	@echo "  curl -X POST $(HOST):$(PORT)/v1/events -H 'X-API-Key: $(API_KEY)' -d '{\"events\":[{\"user_id\":\"196\",\"item_id\":\"50\"}]}'"
	@echo
	GENREC_API_KEY=$(API_KEY) $(BIN)/genrec serve --bundle $(BUNDLE) --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Quality: every recipe tried, the SASRec grids, genrec vs SASRec vs popularity (3 seeds), and
# the make-demo bundle. All of it is most of a day on a 2-core host (a RecBole run alone is
# ~1 h); runs are kept (data/bench-runs, data/recbole-work/runs), so an interrupted run
# resumes, and recipes.py, sasrec_tuning.py and recbole_sasrec.py take --finished-only to
# tabulate what has finished without starting anything.
bench-quality: install
	$(BIN)/python benchmarks/recipes.py
	$(BIN)/python benchmarks/sasrec_tuning.py
	$(BIN)/python benchmarks/recbole_sasrec.py --jobs 2
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/demo_quality.py

# Tokenizer and generator-architecture studies (1 seed each, ~2 hours); the tokenizer study
# reads the seed spread from quality.json.
bench-studies: bench-quality
	$(BIN)/python benchmarks/tokenizer_study.py
	$(BIN)/python benchmarks/generator.py

# The real server under closed- and open-loop load (~18 min on 2 cores): benchmarks/results/serving.*
bench-serving: train
	$(BIN)/python benchmarks/decode_cost.py --bundle $(BUNDLE)
	$(BIN)/python benchmarks/serving.py --bundle $(BUNDLE) --data-dir $(GENREC_DATA_DIR)

clean:
	rm -rf $(VENV) artifacts .pytest_cache
