# Two entry points for a fresh machine:  `make up`  (run the product)  and  `make test`  (run the tests).
# Everything the tests need is installed and started here, so CI and a laptop do the same thing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: up test test-fast screenshots lint bench bench-delivery services system-packages infra-tools clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# checkov (lints infra/terraform) cannot share .venv: it pins packaging<24, pytest needs >=24.
INFRA_STAMP := .venv-infra/.installed
$(INFRA_STAMP): infra/requirements-lint.txt
	test -x .venv-infra/bin/python || $(PYTHON) -m venv .venv-infra
	.venv-infra/bin/pip install --quiet -r infra/requirements-lint.txt
	touch $(INFRA_STAMP)

infra-tools: $(INFRA_STAMP)

venv: $(STAMP)
assets: node_modules/.package-lock.json

## Run Streamify on embedded defaults (SQLite, local blobs, filesystem broker) at http://127.0.0.1:8000
up: $(STAMP) assets
	$(BIN)/streamify up

## Debian packages the tests use: ffmpeg (system build), nginx, Chromium for the browser tests.
system-packages:
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## PostgreSQL and Redis on their standard local ports; started if they are down.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done

## Install and start everything, then run the whole test suite.
test: $(STAMP) assets system-packages services infra-tools lint
	$(PYTEST) $(PYTEST_ARGS)

## The fast tier: every test that needs no service, no browser and no slow encode (markers: tests/conftest.py).
FAST_TESTS := not stack and not browser and not slow
test-fast: $(STAMP) assets infra-tools lint
	$(PYTEST) -m "$(FAST_TESTS)" --durations=10 $(PYTEST_ARGS)

## Run the page tests and refresh docs/screenshots from them (`make test` writes test-artifacts/ only).
screenshots: $(STAMP) assets system-packages services
	SCREENSHOTS_TO_DOCS=1 $(PYTEST) -m browser $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

## Ladder benchmark: one-process pipeline vs one ffmpeg per rendition (time ratio, VMAF per rung).
bench: $(STAMP)
	$(BIN)/python -m bench.ladder

## Delivery benchmark: the nginx front vs raw nginx on the same files (needs wrk and nginx from Debian).
bench-delivery: $(STAMP) assets
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python -m bench.delivery --azure --rounds 5 --duration 8

clean:
	rm -rf $(VENV) .venv-infra node_modules streamify-data test-artifacts
