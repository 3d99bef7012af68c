# dhtlink: every target creates the virtual environment (.venv) on first use.
# Options pass through variables: PORT is a board's serial port (make flash PORT=/dev/ttyUSB0), LISTEN_PORT
# the local endpoint's TCP port (make serve LISTEN_PORT=9000).

PYTHON ?= python3
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
DHTLINK := $(BIN)/dhtlink
# The dashboard's tests drive Debian's chromium through Playwright; no tool downloads a browser.
# Defined before the rules that list it: make expands prerequisites as it reads them.
CHROMIUM := /usr/bin/chromium
# The MQTT bridge's tests start Debian's mosquitto on a loopback port of their own, never the service.
MOSQUITTO := /usr/sbin/mosquitto
# MicroPython's ESP32 port as type stubs, for checking device/ (make lint); kept out of the venv's
# site-packages, where they would stand in for CPython's own modules.
DEVICE_STUBS := micropython-esp32-esp32-generic-stubs==1.29.0.post1 micropython-stdlib-stubs==1.29.0.post2

.PHONY: venv emulators improv-client test test-fast test-browser chromium mosquitto lint serve bench flash repl provision deploy clean

venv: $(STAMP)

# '.[dev]': every extra of pyproject.toml (tools, bench, pi) and the test tools.
$(STAMP): pyproject.toml
	@echo "Installing dhtlink and its tools into $(VENV): about 1.5 minutes from pip's cache, 3-5 from the"
	@echo "network (the first time, and again only when pyproject.toml changes)."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	@echo "[1/2] dhtlink with its dependencies (each package as pip fetches it):"
	@set -o pipefail; $(BIN)/python -m pip install -e '.[dev]' 2>&1 | tee $(VENV)/pip-install.log \
		| sed -un 's/^Collecting \([^ ]*\).*/  \1/p; s/^Successfully installed.*/  installed/p' \
		|| { tail -25 $(VENV)/pip-install.log; echo "pip failed: its whole log is $(VENV)/pip-install.log"; exit 1; }
	@echo "[2/2] MicroPython's ESP32 type stubs (for make lint)"
	@$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/device-stubs $(DEVICE_STUBS)
	@echo "Ready: source $(VENV)/bin/activate (or call $(DHTLINK)); dhtlink --help lists the commands."
	@rm -f $(VENV)/.installed-*
	@touch $@

# dynalite: a second DynamoDB emulator for the store tests, pinned by tests/emulators/package-lock.json.
EMULATORS := tests/emulators
DYNALITE := $(EMULATORS)/node_modules/.bin/dynalite

emulators: $(DYNALITE)

$(DYNALITE): $(EMULATORS)/package-lock.json
	npm ci --prefix $(EMULATORS) --no-audit --no-fund --loglevel=error
	@touch $@

# The Improv Wi-Fi reference client (improv-wifi-serial-sdk), pinned by tests/improv/package-lock.json:
# the firmware's Improv is checked against it under node.
IMPROV_CLIENT_DIR := tests/improv
IMPROV_CLIENT := $(IMPROV_CLIENT_DIR)/node_modules/improv-wifi-serial-sdk/package.json

improv-client: $(IMPROV_CLIENT)

$(IMPROV_CLIENT): $(IMPROV_CLIENT_DIR)/package-lock.json
	npm ci --prefix $(IMPROV_CLIENT_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

test: $(STAMP) $(CHROMIUM) $(MOSQUITTO) $(DYNALITE) $(IMPROV_CLIENT)
	$(BIN)/pytest $(PYTEST_ARGS)

# The dashboard in a real browser alone: make test-browser
test-browser: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest -m browser $(PYTEST_ARGS)

chromium: $(CHROMIUM)

$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

mosquitto: $(MOSQUITTO)

$(MOSQUITTO):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto

test-fast: $(STAMP) $(MOSQUITTO) $(DYNALITE) $(IMPROV_CLIENT)
	$(BIN)/pytest -m 'not slow' $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --config-file mypy-device.ini device

# The local endpoint: 127.0.0.1:$(LISTEN_PORT) (default 8080), data in $(DATA_DIR) (default .dhtlink).
serve: $(STAMP)
	$(if $(filter-out /%,$(PORT)),@echo "note: PORT=$(PORT) is a board's serial port; the endpoint's TCP port is LISTEN_PORT=" >&2)
	$(DHTLINK) serve $(if $(HOST),--host $(HOST)) $(if $(LISTEN_PORT),--listen $(LISTEN_PORT))

# The main job: local endpoint + a fleet of virtual boards running the real firmware.
bench: $(STAMP)
	$(DHTLINK) bench $(BENCH_ARGS)

# Board targets: PORT=/dev/ttyUSB0 picks the serial port when more than one board is attached.
flash: $(STAMP)
	$(DHTLINK) flash $(if $(PORT),--port $(PORT)) $(if $(FIRMWARE),--firmware $(FIRMWARE)) $(if $(ERASE),--erase)

provision: $(STAMP)
	$(DHTLINK) provision $(if $(PORT),--port $(PORT)) $(if $(DEVICE_ID),--device "$(DEVICE_ID)") \
		$(if $(WIFI_SSID),--wifi-ssid "$(WIFI_SSID)") $(if $(WIFI_PASSWORD_FILE),--wifi-password-file $(WIFI_PASSWORD_FILE)) \
		$(if $(ENDPOINT),--endpoint "$(ENDPOINT)") $(if $(AWS),--aws)

repl: $(STAMP)
	$(DHTLINK) repl $(if $(PORT),--port $(PORT))

deploy: $(STAMP)
	$(DHTLINK) deploy $(if $(STACK),--stack $(STACK)) $(if $(REGION),--region $(REGION)) $(if $(BUCKET),--bucket $(BUCKET))

clean:
	rm -rf $(VENV) $(EMULATORS)/node_modules .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
