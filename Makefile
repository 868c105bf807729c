# Run `make help` for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PYTHON := $(VENV)/bin/python
RABBITMQ_SERVER := /usr/lib/rabbitmq/bin/rabbitmq-server
SERVICE_REQUIREMENTS := features/requirements.txt model/requirements.txt metric/requirements.txt plot/requirements.txt

.PHONY: help install train profile pictures test e2e chaos bench lint format rabbitmq browser up up-cluster cookie down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed model/model.skops model/model.profile.json ## Create .venv with everything the services and tests need, and train the default model (and its profile)

$(VENV)/.installed: requirements-dev.txt $(SERVICE_REQUIREMENTS) common/pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e common
	touch $@

model/model.skops: $(VENV)/.installed model/src/train.py
	DATASET_PATH= MODEL_PATH= $(PYTHON) model/src/train.py

# train.py writes it with the model; this makes it for a model trained before train.py did
model/model.profile.json: model/model.skops
	DATASET_PATH= MODEL_PATH= MODEL_TRUSTED_TYPES= $(PYTHON) model/src/make_profile.py

train: $(VENV)/.installed ## Train the default estimator on your CSV, and save its profile: make train DATASET_PATH=… TARGET_COLUMN=… MODEL_PATH=…
	DATASET_PATH="$(DATASET_PATH)" TARGET_COLUMN="$(TARGET_COLUMN)" MODEL_PATH="$(MODEL_PATH)" $(PYTHON) model/src/train.py

profile: $(VENV)/.installed ## Save the profile of your own model beside it: make profile MODEL_PATH=… DATASET_PATH=… TARGET_COLUMN=…
	MODEL_PATH="$(MODEL_PATH)" DATASET_PATH="$(DATASET_PATH)" TARGET_COLUMN="$(TARGET_COLUMN)" \
	  MODEL_TRUSTED_TYPES="$(MODEL_TRUSTED_TYPES)" $(PYTHON) model/src/make_profile.py

rabbitmq: ## Make sure Debian's rabbitmq-server is installed (the tests start private nodes of it)
	@test -x $(RABBITMQ_SERVER) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null; \
	  else \
	    echo "make test needs RabbitMQ's server at $(RABBITMQ_SERVER): install the rabbitmq-server package (Debian/Ubuntu: sudo apt-get install rabbitmq-server)"; exit 1; \
	  fi; }

browser: ## Make sure Debian's chromium (the browser tests) and promtool (checks monitoring/prometheus.yml and tests the alert rules) are installed
	@test -x /usr/bin/chromium -a -x /usr/bin/promtool || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium prometheus >/dev/null; \
	  else \
	    echo "make test needs Debian's chromium and promtool: install the chromium and prometheus packages (sudo apt-get install chromium prometheus)"; exit 1; \
	  fi; }

test: install rabbitmq browser ## Run the unit, integration and browser tests (they start their own RabbitMQ nodes)
	$(PYTHON) -m pytest -m "not compose and not chaos"

chaos: install rabbitmq ## Kill services and the broker at random during a full-speed run; CHAOS_SEED=N replays one, CHAOS_CLUSTER=3 kills cluster nodes
	$(PYTHON) -m pytest -m chaos -s

bench: install rabbitmq ## Print the benchmark table (drain, wire limit, latency, plot); BENCH_* variables size it
	$(PYTHON) -m tests.bench.bench

pictures: install rabbitmq browser ## Regenerate docs/*.png: the services on data/wine.csv, their pictures and a screenshot of the page
	$(PYTHON) -m docs.pictures

e2e: install ## Build and run the shipped Compose stack and check it end to end (needs Docker; see README)
	tests/e2e/prepare
	$(PYTHON) -m pytest -m compose

lint: install ## Check the code with ruff and mypy, and the Dockerfiles with hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile tests/e2e/standins/*.Dockerfile

format: install ## Reformat the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

up: ## Build and start the stack with Docker Compose
	docker compose up --build

up-cluster: rabbitmq/erlang.cookie ## Build and start the stack on a three-node RabbitMQ cluster (docker-compose.cluster.yml)
	docker compose -f docker-compose.yml -f docker-compose.cluster.yml up --build

cookie: rabbitmq/erlang.cookie ## Write this installation's Erlang cookie for the cluster (rabbitmq/erlang.cookie, git-ignored), once

rabbitmq/erlang.cookie:
	umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' > $@.tmp && mv $@.tmp $@

down: ## Stop the stack (add `-v` by hand to also drop the broker's data)
	docker compose down

clean: ## Remove the virtual environment, the trained model and its profile (logs/ is left alone)
	rm -rf $(VENV) model/model.skops model/model.profile.json
