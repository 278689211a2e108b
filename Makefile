# Lepton: `make run` sets everything up and chats in the terminal; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.10
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5005
RASA_PROJECT := --domain bot/domain.yml --data data --config config.yml
RASA_RUNTIME := --model models --endpoints bot/endpoints.yml --credentials bot/credentials.yml

# Models come from disk only; nothing is fetched from a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export RASA_TELEMETRY_ENABLED := false

# Secrets, each generated once into a file only its owner can read (mode 0600) unless the
# variable is already set in the environment:
# - LEPTON_ADMIN_TOKEN: the knowledge-base admin routes (bot/credentials.yml);
# - LEPTON_REST_TOKEN: the REST channel, for the website backend that relays customers'
#   messages (`Authorization: Bearer ...`, bot/credentials.yml);
# - LEPTON_WEB_CHAT_SECRET: signs the web chat's sessions (bot/credentials.yml); every
#   replica needs the same one;
# - LEPTON_OPERATOR_PASSWORD: the operator console's first `admin` account (log in at
#   http://localhost:5005/webhooks/operators/ as `admin`; bot/credentials.yml);
# - LEPTON_API_TOKEN: Rasa's HTTP API; only `make serve` enables the API, and the server
#   refuses to start it without a token (docs/hardening.md).
secret = $(shell test -s $(1) || (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > $(1)); chmod 600 $(1); cat $(1))
LEPTON_ADMIN_TOKEN ?= $(call secret,.lepton-admin-token)
LEPTON_REST_TOKEN ?= $(call secret,.lepton-rest-token)
LEPTON_WEB_CHAT_SECRET ?= $(call secret,.lepton-web-chat-secret)
LEPTON_API_TOKEN ?= $(call secret,.lepton-api-token)
LEPTON_OPERATOR_PASSWORD ?= $(call secret,.lepton-operator-password)
export LEPTON_ADMIN_TOKEN LEPTON_REST_TOKEN LEPTON_WEB_CHAT_SECRET LEPTON_OPERATOR_PASSWORD

.PHONY: bench bench-quick browser eval faq-reload faq-eval run serve train install test test-fast validate rasa-test screenshot shell-nlu constraints clean

## run: install, train when data or config changed, then chat in `rasa shell`
# The shell talks to its own server through Rasa's open REST channel: loopback only.
run: train
	$(BIN)/rasa shell $(RASA_RUNTIME) --interface 127.0.0.1

## serve: install, train when needed, then serve HTTP (REST channel and API, token in .lepton-api-token) on $(PORT)
serve: export LEPTON_API_TOKEN := $(LEPTON_API_TOKEN)
serve: train
	$(BIN)/rasa run $(RASA_RUNTIME) --port $(PORT) --enable-api

## shell-nlu: show intent ranking and entities for typed messages
shell-nlu: train
	$(BIN)/rasa shell nlu --model models

## train: `rasa train` reuses the previous model when nothing changed
train: install
	$(BIN)/rasa train $(RASA_PROJECT) --out models

## faq-reload: swap the edited data/faq.yml into the running `make serve` server, no retraining
faq-reload:
	@curl -sS -X POST -H "Authorization: Bearer $$LEPTON_ADMIN_TOKEN" http://127.0.0.1:$(PORT)/webhooks/faq_admin/reload; echo

## faq-eval: retrieval recall@k/MRR on held-out paraphrases and the threshold sweep plot
faq-eval: install
	$(BIN)/python -m benchmarks.faq_eval --plot docs/faq_threshold_sweep.png

## eval: what the customer sees: held-out turns through the trained bot (Rasa `Agent`), right/deferred/wrong per category
eval: train
	$(BIN)/python -m benchmarks.customer_eval --model models --threads 1 --out docs/customer_eval.json

## bench-quick: BANKING77 10-shot, LoRA vs Rasa DIET (20 epochs), a few minutes
bench-quick: install
	$(BIN)/python -m benchmarks.banking77 --quick

# The settings docs/benchmarks.md reports: per training mode, for each data size.
BENCH_10SHOT_CONFIG := {"head_only": {"epochs": 100, "validation_fraction": 0, "normalize_embeddings": true}, \
  "lora": {"epochs": 10, "head_warmup_epochs": 100, "validation_fraction": 0, "normalize_embeddings": true}, \
  "full": {"epochs": 10, "head_warmup_epochs": 100, "validation_fraction": 0, "normalize_embeddings": true}}
BENCH_FULL_CONFIG := {"head_only": {"epochs": 100, "early_stopping_patience": 10}, \
  "lora": {"epochs": 4, "head_warmup_epochs": 20}, "full": {"epochs": 4, "head_warmup_epochs": 20}}

## bench: BANKING77, every training mode vs Rasa DIET, 10-shot then full data (about 75 minutes on 2 cores)
bench: install
	$(BIN)/python -m benchmarks.banking77 --setting 10shot --serving onnx-int8 \
	  --lepton-config '$(BENCH_10SHOT_CONFIG)' --out docs/banking77_10shot.json
	$(BIN)/python -m benchmarks.banking77 --setting full --diet-epochs 5 --serving onnx-int8 \
	  --lepton-config '$(BENCH_FULL_CONFIG)' --out docs/banking77_full.json
	$(BIN)/python -m benchmarks.banking77 --reports docs/banking77_10shot.json docs/banking77_full.json \
	  --plot docs/banking77.png

## test: the full test suite (unit and integration)
test: install browser
	$(BIN)/python -m pytest

## test-fast: unit tests only, skipping trainings with the real model
test-fast: install browser
	$(BIN)/python -m pytest -m "not slow"

## browser: Debian's Chromium for the web chat tests (Playwright drives it; it downloads no browser); fails without one
browser:
	@if [ -n "$$LEPTON_CHROMIUM" ]; then \
	  test -x "$$LEPTON_CHROMIUM" || { echo "LEPTON_CHROMIUM=$$LEPTON_CHROMIUM is not an executable file." >&2; exit 1; }; \
	elif ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then \
	  { test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
	    && { apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; } \
	    && command -v chromium >/dev/null; } \
	  || { echo "Chromium is missing and could not be installed; the browser tests need it. Run \`make browser\`" \
	    "as root on Debian (it runs \`apt-get install chromium\`), or set LEPTON_CHROMIUM to a Chromium binary." >&2; \
	    exit 1; }; \
	fi

## screenshot: the web chat and operator console screenshots in README.md, taken by the browser tests against `rasa run`
screenshot: install browser
	LEPTON_SCREENSHOT_DIR=docs $(BIN)/python -m pytest tests/integration/test_web_chat_e2e.py tests/integration/test_operator_journeys.py

## rasa-test: `rasa test` on the test stories and NLU data; reports in results/
rasa-test: train
	$(BIN)/rasa test --model models --stories bot/test_stories.yml --nlu data/nlu.yml --out results

validate: install
	$(BIN)/rasa data validate $(RASA_PROJECT)

install: $(VENV)/.installed

# One pip call resolves everything together so rasa's pins (numpy<1.25,
# pydantic<1.10.10) hold; constraints.txt fixes every version.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --constraint constraints.txt --editable ".[test]"
	touch $@

## constraints: re-pin every package after changing dependencies in pyproject.toml
constraints: install
	{ head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^-e\|lepton'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf models results .pytest_cache
