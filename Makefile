# calltrail — everything a newcomer or CI needs starts here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint bench clean venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

## make run: the whole system on this machine (broker, gateway, …) with dev defaults
run: $(STAMP)
	$(BIN)/calltrail dev

PY_SOURCES := services tests bench migrations

## make test: lint, types and walls, then unit, integration (real broker) and end-to-end tests
test: lint
	$(BIN)/python -m pytest

## make lint: ruff (rules and format), mypy --strict, the import contracts (pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports

## make bench: the performance benchmarks (not part of the test suite)
bench: $(STAMP)
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/recorder.py
	$(BIN)/python bench/kintone.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis var

# --- the kintone plugin (plugin/, CONTRACT §8) ------------------------------------------------
PLUGIN_STAMP := plugin/node_modules/.installed-$(shell cksum < plugin/package-lock.json | cut -d' ' -f1)

.PHONY: plugin plugin-check chromium screenshots

$(PLUGIN_STAMP): plugin/package-lock.json
	cd plugin && npm ci --no-audit --no-fund
	touch $(PLUGIN_STAMP)

## make plugin: build and sign the kintone plugin → plugin/dist/calltrail.zip
plugin: $(PLUGIN_STAMP)
	cd plugin && npm run --silent build && npm run --silent pack

# The browser tests drive Debian's Chromium (a Playwright browser download cannot work here).
chromium:
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

# `make test` also runs the plugin's unit tests, and builds what its browser tests load.
test: plugin-check
plugin-check: plugin chromium
	cd plugin && node --test test/

# promtool and prometheus (Debian's prometheus package) for the alerting rules' tests. Its
# postinst starts the daemon through invoke-rc.d where no systemd runs (a container): a
# policy-rc.d that refuses, for the time of the install, keeps anything from starting. Without
# recommends: prometheus-node-exporter would be another daemon.
.PHONY: prometheus
test: prometheus
prometheus:
	@test -x /usr/bin/promtool -a -x /usr/bin/prometheus || { \
	  policy=/usr/sbin/policy-rc.d; ours=; \
	  if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy && chmod +x $$policy && ours=1; fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
	  status=$$?; if [ -n "$$ours" ]; then rm -f $$policy; fi; exit $$status; }

## make screenshots: the README's pictures of the plugin (docs/plugin/*.png)
screenshots: $(STAMP) plugin chromium
	@fc-list | grep -qi ipa || (apt-get update && apt-get install -y fonts-ipafont-gothic)
	CALLTRAIL_SCREENSHOTS=docs/plugin $(BIN)/python -m pytest -q tests/plugin/test_screenshots.py
