# archiver — set-up, tests and the demo. `make test` and `make demo` each run `make setup` first,
# so either works alone on a fresh clone.
SHELL := /bin/bash
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every Python package, pinned with hashes (scripts/lock says how it is made); uv, which only regenerates it,
# has a lock of its own and is installed by the targets that need it.
LOCK       := requirements.lock
TOOLS_LOCK := requirements-tools.lock
UV         := $(BIN)/uv
PIP        := $(BIN)/pip -q --disable-pip-version-check
# ReplayWeb.page, which tests/test_replay_wacz.py loads exports into: only its built ui.js and sw.js (they run in
# Chromium, so node is not needed at run time; npm only fetches the package). Pinned, and checked against the
# registry's sha512 for that version.
RWP_VERSION   := 2.5.3
RWP_INTEGRITY := sha512-nCj2PSON3BxeSJKE8AsYPyULv0XPZKJWfy4l9PyQre9SqwLZ+WKZVs/sfLqPOQ4GrH+0YkjbwOhr8cSTH08gsQ==
RWP_DIR       := $(VENV)/replaywebpage
RWP_STAMP     := $(RWP_DIR)/.installed-$(RWP_VERSION)

.PHONY: setup system-packages lock update-extractors test test-all test-team demo serve-demo bench clean

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

# Oldest Debian package versions archiver is known to work with (Debian's version strings, epoch included).
# chromium: Playwright 1.65 drives it over CDP and is built against Chromium 159 (its browsers.json); it
#   supports the current stable channel, which Debian 12's security updates follow (156 here, the suite green
#   with it). An older Chromium lacks CDP methods and fields Playwright sends: raise this with Playwright.
# ffmpeg: 5.1 is Debian 12's. The bit-exact merges and the live-stream trailer (SIGINT) are tested with it;
#   4.x (Debian 11) is not, and its muxers write other bytes.
# postgresql: 15 is Debian 12's (the metapackage's version is the major, "15+248"). The team-mode tests run against
#   it; SKIP LOCKED, LISTEN/NOTIFY and the GRANTs they use are older, but nothing older than 15 is tested.
CHROMIUM_MIN   := 156
FFMPEG_MIN     := 7:5.1
POSTGRESQL_MIN := 15

# $(call NEED_VERSION,package,minimum): fails with one line when Debian's package is older than the minimum.
# A binary dpkg does not know (installed by hand) is not checked, and the line says so.
NEED_VERSION = v="$$(dpkg-query -W -f='$${Version}' $(1) 2>/dev/null)"; \
	if [ -z "$$v" ]; then \
	  echo "setup: $(1) is not a Debian package here, so its version is not checked (archiver needs >= $(2))" >&2; \
	elif ! dpkg --compare-versions "$$v" ge "$(2)"; then \
	  echo "setup: $(1) $$v is installed, archiver needs $(1) >= $(2) — run: sudo apt-get update && sudo apt-get install --only-upgrade $(1)" >&2; \
	  exit 1; \
	fi

# Debian's chromium and ffmpeg (wget is the benchmark's baseline; openssl makes test certificates).
# Playwright drives the system browser, so no browser download is ever needed: chromium-headless-shell for captures
# (browser.executable = "auto"; the same engine, a quarter of the CPU per capture), chromium when a window is wanted.
# postgresql: the server the team-mode tests start on 127.0.0.1 (tests/backends.py: initdb into a temp dir, run as
#   the package's unprivileged `postgres` user when set-up runs as root). Debian keeps its binaries off PATH, in
#   /usr/lib/postgresql/<major>/bin, which is where the tests look. Its client psql comes with it.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromium-headless-shell >/dev/null 2>&1 || missing="$$missing chromium-headless-shell"; \
	command -v ffmpeg   >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v wget     >/dev/null 2>&1 || missing="$$missing wget"; \
	command -v openssl  >/dev/null 2>&1 || missing="$$missing openssl"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	$(APT_INSTALL)
	@$(call NEED_VERSION,chromium,$(CHROMIUM_MIN))
	@$(call NEED_VERSION,chromium-headless-shell,$(CHROMIUM_MIN))
	@$(call NEED_VERSION,ffmpeg,$(FFMPEG_MIN))
	@$(call NEED_VERSION,postgresql,$(POSTGRESQL_MIN))

# .venv holds exactly the lock: every file checked against its hash, no dependency resolved here (--no-deps:
# the lock already names every one), then whatever a lock no longer names is removed (pip-sync with pip alone,
# so that set-up needs no uv; cheaper than building the venv anew, and it keeps ReplayWeb.page), then archiver
# itself, editable (quiet, as setuptools warns about every editable install). The lock's setuptools goes in
# first and builds what is built here, archiver and surt (the one package in the lock with no wheel, on every
# platform), with --no-build-isolation: so no build dependency is ever fetched unhashed.
# Runs only when the lock or pyproject.toml changes, so a second `make setup` takes well under a second.
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@awk '/^setuptools==/ {p = 1; print; next} p && /^ +--hash=/ {print; next} {p = 0}' $(LOCK) \
	  | $(PIP) install --require-hashes --no-deps -r /dev/stdin
	@$(PIP) install --require-hashes --no-deps --no-build-isolation -r $(LOCK)
	@extra="$$($(BIN)/python scripts/lockfile.py unlocked)"; \
	if [ -n "$$extra" ]; then echo "setup: removing packages the lock does not name:" $$extra; \
	  $(PIP) uninstall -y $$extra; fi
	@PYTHONWARNINGS=ignore $(PIP) install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(LOCK) $(TOOLS_LOCK):
	@echo "setup: $@ is missing — restore it with: git checkout $@" >&2; exit 1

# uv, from its own hashed lock, for the targets that regenerate requirements.lock.
$(UV): $(TOOLS_LOCK) | $(STAMP)
	@$(PIP) install --require-hashes --no-deps -r $(TOOLS_LOCK)
	@touch $(UV)

# Regenerates the locks from pyproject.toml, keeping every existing pin (uv moves one only when asked).
lock: $(UV)
	@$(BIN)/python scripts/lock
	@echo 'lock: $(LOCK) regenerated; `make setup` installs it, `git diff $(LOCK)` shows what moved'

# yt-dlp to its newest release, installed, then the platform contract tests: one row per platform path.
update-extractors: setup $(UV)
	@$(BIN)/python scripts/update-extractors

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

# The suite in team mode: every archive the tests make keeps its index in a fresh database of a PostgreSQL server the
# tests start on 127.0.0.1, and seals its WARCs into a prefix of its own of a bucket with Object Lock on moto's S3
# server, also started by the tests (tests/conftest.py). Tests that read or change the SQLite file itself, or whose
# subject is the local directory of WARCs, are skipped, each with its reason.
test-team: setup
	ARCHIVER_TEST_INDEX=postgres ARCHIVER_TEST_STORAGE=s3 $(BIN)/python -m pytest -q

demo: setup
	$(BIN)/python scripts/demo

# The workbench on the demo archive (made first if there is none), on http://archive.localhost:8080/ until ^C.
serve-demo: setup
	@test -f demo-archive/index.db || $(BIN)/python scripts/demo
	$(BIN)/archiver --archive demo-archive serve

bench: setup
	$(BIN)/python scripts/bench

clean:
	rm -rf $(VENV) demo-archive .pytest_cache
