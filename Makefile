# gentle.lb: `make demo` and `make test` work on a fresh Debian machine.
# Everything they need is installed here: Debian packages (as root, or through
# sudo), a Python 3.13 virtualenv with the controller tools, and the
# ansible_collections/gentle/lb path the tools expect.

SHELL := /bin/bash
.DEFAULT_GOAL := help

REPO        := $(CURDIR)
VENV        := $(REPO)/.venv
PEERS       := $(REPO)/.venv-peers
BIN         := $(VENV)/bin
COLLECTIONS := $(REPO)/.cache/collections
COLLECTION  := $(COLLECTIONS)/ansible_collections/gentle/lb
STAMP       := $(REPO)/.cache/stamps
APT_PACKAGES := haproxy user-mode-linux ipvsadm kmod keepalived iproute2 socat curl openssl ca-certificates shellcheck
PYTEST      := PYTHONPATH=$(COLLECTIONS) ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) $(BIN)/pytest

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_NOCOLOR := 1

.PHONY: help setup demo test sanity lint units integration integration-haproxy integration-ipvs \
        integration-f5 integration-role integration-awx integration-packaging integration-lvs-director \
        changelog-lint docs-lint bench clean

help:
	@echo "make demo   - start the local lab and roll every app instance from v1 to v2 under load"
	@echo "make test   - sanity, lint, unit and integration tests against real HAProxy, IPVS (user-mode"
	@echo "              Linux) and the F5 emulator"
	@echo "make bench  - benchmarks against community.general.haproxy, bigip_pool_member and ipvsadm loops"

# ---------------------------------------------------------------- setup
setup: $(STAMP)/apt $(STAMP)/venv $(STAMP)/haproxy-3.0 $(STAMP)/peers $(COLLECTION)

$(STAMP)/apt:
	@mkdir -p $(STAMP)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "gentle.lb: these Debian packages are missing: $$missing"; \
	       echo "           installing them needs root. Run 'make' as root, or install sudo for this user,"; \
	       echo "           or install them yourself: apt-get install $$missing"; exit 1; fi; \
	  echo "installing Debian packages: $$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

$(STAMP)/venv: test-requirements.txt
	@mkdir -p $(STAMP)
	@py=$$(PYENV_VERSION=3.13.0 command -v python3.13 2>/dev/null || true); \
	[ -n "$$py" ] || { echo "gentle.lb: python3.13 not found (pyenv 3.13.0 or a system python3.13 is needed for the controller tools)"; exit 1; }; \
	[ -x $(BIN)/python ] || PYENV_VERSION=3.13.0 $$py -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -r test-requirements.txt
	@# bigsuds declares suds-jurko, which does not build on Python 3.11+ (docs/f5.md).
	$(BIN)/pip install -q --no-deps bigsuds
	@touch $@

$(STAMP)/haproxy-3.0: lab/haproxy/fetch-3.0.sh
	@mkdir -p $(STAMP)
	bash lab/haproxy/fetch-3.0.sh
	@touch $@

$(STAMP)/peers:
	@mkdir -p $(STAMP)
	bash lab/peers/setup.sh
	@touch $@

$(COLLECTION):
	@mkdir -p $(dir $@)
	ln -sfn $(REPO) $@

# ---------------------------------------------------------------- demo
demo: setup
	$(BIN)/python lab/demo.py

# ---------------------------------------------------------------- tests
# The suites wait on real processes far more than they compute, so `make test`
# runs them side by side (TEST_JOBS at once, output kept per suite), longest
# first so that they start at once, then prints each suite's counts and time
# and each check's result and time (tests/timed records them, tests/summary.py
# prints them).  Three at a time keeps 2 cores from starving the timing-sensitive
# labs (fast health checks, rollouts under load); the role suite is the longest
# by far, so the others only have to fit beside it.
CHECKS    := sanity lint changelog-lint docs-lint
SUITES    := integration-role integration-lvs-director integration-haproxy integration-ipvs \
             integration-f5 integration-awx units integration-packaging
TEST_JOBS ?= 3
REPORTS   := $(REPO)/tests/output/junit
TIMED      = $(REPO)/tests/timed $(REPORTS)/$@.run
RUN_PYTEST = $(TIMED) env -C $(COLLECTION) $(PYTEST) -q -p no:cacheprovider --junitxml=$(REPORTS)/$@.xml

test: setup
	@rm -rf $(REPORTS); mkdir -p $(REPORTS)
	@start=$$(date +%s); status=0; \
	$(MAKE) --no-print-directory -k -j$(TEST_JOBS) --output-sync=target $(SUITES) $(CHECKS) || status=$$?; \
	$(BIN)/python tests/summary.py $(REPORTS) --suites $(SUITES) --checks $(CHECKS) \
	    --wall $$(( $$(date +%s) - start )) --jobs $(TEST_JOBS) || status=1; exit $$status

sanity: setup
	$(TIMED) tests/sanity/run.sh

lint: setup
	$(TIMED) $(BIN)/ansible-lint --offline

changelog-lint: setup
	$(TIMED) $(BIN)/antsibull-changelog lint

docs-lint: setup
	$(TIMED) env -C $(COLLECTION) PATH=$(BIN):$$PATH $(BIN)/antsibull-docs lint-collection-docs --plugin-docs .

units: setup
	$(RUN_PYTEST) tests/unit

integration: $(filter integration-%,$(SUITES))

integration-haproxy: setup
	$(RUN_PYTEST) tests/integration/haproxy

integration-f5: setup
	$(RUN_PYTEST) tests/integration/f5 tests/integration/test_f5_emulator_compat.py

integration-ipvs: setup
	$(RUN_PYTEST) tests/lab tests/integration/ipvs

integration-role: setup
	$(RUN_PYTEST) tests/integration/role

integration-awx: setup
	$(RUN_PYTEST) tests/integration/awx

integration-packaging: setup
	$(RUN_PYTEST) tests/integration/packaging

integration-lvs-director: setup
	$(RUN_PYTEST) tests/integration/lvs_director

bench: setup
	$(BIN)/python bench/haproxy_drain.py
	$(BIN)/python bench/f5_requests.py
	$(BIN)/python bench/ipvs_scale.py
	$(BIN)/python bench/rolling.py

clean:
	rm -rf $(REPO)/.cache $(REPO)/tests/output
