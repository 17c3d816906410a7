# archiver — set-up, tests and the demo. `make test` and `make demo` each run `make setup` first,
# so either works alone on a fresh clone.
SHELL := /bin/bash
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-packages test test-all demo bench clean

setup: system-packages $(STAMP)

# Debian's chromium and ffmpeg (wget is the benchmark's baseline; openssl makes test certificates).
# Playwright drives the system browser, so no browser download is ever needed.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v ffmpeg   >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v wget     >/dev/null 2>&1 || missing="$$missing wget"; \
	command -v openssl  >/dev/null 2>&1 || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "setup: installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "setup: missing Debian packages:$$missing — run: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

# Reinstalls only when pyproject.toml changes, so a second `make setup` takes well under a second.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

# Everything, including the slow suites (SIGKILL + lease expiry, many captures).
test-all: setup
	$(BIN)/python -m pytest -q -m ''

demo: setup
	$(BIN)/python scripts/demo

bench: setup
	$(BIN)/python scripts/bench

clean:
	rm -rf $(VENV) demo-archive .pytest_cache
