# archiver — set-up, tests and the demo. `make test` and `make demo` each run `make setup` first,
# so either works alone on a fresh clone.
SHELL := /bin/bash
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# ReplayWeb.page, which tests/test_replay_wacz.py loads exports into: only its built ui.js and sw.js (they run in
# Chromium, so node is not needed at run time; npm only fetches the package). Pinned, and checked against the
# registry's sha512 for that version.
RWP_VERSION   := 2.5.3
RWP_INTEGRITY := sha512-nCj2PSON3BxeSJKE8AsYPyULv0XPZKJWfy4l9PyQre9SqwLZ+WKZVs/sfLqPOQ4GrH+0YkjbwOhr8cSTH08gsQ==
RWP_DIR       := $(VENV)/replaywebpage
RWP_STAMP     := $(RWP_DIR)/.installed-$(RWP_VERSION)

.PHONY: setup system-packages test test-all demo bench clean

setup: system-packages $(STAMP) $(RWP_STAMP)

# Installs the Debian packages a recipe collected in $$missing (as root), or says how to and fails.
APT_INSTALL = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "setup: installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "setup: missing Debian packages:$$missing — run: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

# Debian's chromium and ffmpeg (wget is the benchmark's baseline; openssl makes test certificates).
# Playwright drives the system browser, so no browser download is ever needed.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v ffmpeg   >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v wget     >/dev/null 2>&1 || missing="$$missing wget"; \
	command -v openssl  >/dev/null 2>&1 || missing="$$missing openssl"; \
	$(APT_INSTALL)

# Reinstalls only when pyproject.toml changes, so a second `make setup` takes well under a second.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# Fetched once per version (Debian's npm, which brings nodejs, is installed only if this needs it).
$(RWP_STAMP):
	@missing=""; command -v npm >/dev/null 2>&1 || missing=" npm"; $(APT_INSTALL)
	@rm -rf $(RWP_DIR) && mkdir -p $(RWP_DIR)/pack
	@cd $(RWP_DIR)/pack && npm pack --silent replaywebpage@$(RWP_VERSION) >/dev/null
	@got="sha512-$$(openssl dgst -sha512 -binary $(RWP_DIR)/pack/replaywebpage-$(RWP_VERSION).tgz | base64 -w0)"; \
	if [ "$$got" != "$(RWP_INTEGRITY)" ]; then \
	  echo "setup: replaywebpage-$(RWP_VERSION).tgz is $$got, not $(RWP_INTEGRITY)" >&2; exit 1; \
	fi
	@tar -xzf $(RWP_DIR)/pack/replaywebpage-$(RWP_VERSION).tgz -C $(RWP_DIR) --strip-components=1 \
	  package/ui.js package/sw.js package/LICENSE package/package.json
	@rm -rf $(RWP_DIR)/pack && touch $(RWP_STAMP)

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
