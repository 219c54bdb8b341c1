# gentle.lb: `make demo` and `make test` work on a fresh Debian 12 or 13 machine
# that reaches Debian's package registry and PyPI.  Everything they need is
# installed here: Debian packages (as root, or through sudo), a virtualenv of
# a Python 3.12 or newer (tools/find-python: 3.13 preferred) with the
# controller tools, and the ansible_collections/gentle/lb path the tools
# expect.  `make demo` installs only what the demo needs (HAProxy and
# ansible-core); `make test` installs everything.

SHELL := /bin/bash
.DEFAULT_GOAL := help

REPO        := $(CURDIR)
VENV        := $(REPO)/.venv
PEERS       := $(REPO)/.venv-peers
BIN         := $(VENV)/bin
COLLECTIONS := $(REPO)/.cache/collections
COLLECTION  := $(COLLECTIONS)/ansible_collections/gentle/lb
STAMP       := $(REPO)/.cache/stamps
# The demo: the system HAProxy (2.6 on Debian 12) and ansible-core.
APT_DEMO    := haproxy ca-certificates
# The tests, on top: IPVS in user-mode Linux, keepalived, the HAProxy lab's
# helpers, shellcheck for ansible-test, Chromium for the docs site test.
APT_TEST    := user-mode-linux ipvsadm kmod keepalived iproute2 socat curl openssl shellcheck chromium
PYTEST      := PYTHONPATH=$(COLLECTIONS) ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) $(BIN)/pytest

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_NOCOLOR := 1

.PHONY: help setup demo-setup demo docs test sanity lint units integration integration-haproxy integration-ipvs \
        integration-f5 integration-role integration-awx integration-packaging integration-lvs-director \
        changelog-lint docs-lint bench clean

help:
	@echo "make demo   - start the local lab and roll every app instance from v1 to v2 under load"
	@echo "              (installs only HAProxy and ansible-core)"
	@echo "make test   - sanity, lint, unit and integration tests against real HAProxy, IPVS (user-mode"
	@echo "              Linux) and the F5 emulator"
	@echo "make docs   - the HTML documentation site (antsibull-docs) in .cache/docsite/build/html"
	@echo "make bench  - benchmarks against community.general.haproxy, bigip_pool_member and ipvsadm loops"

# ---------------------------------------------------------------- setup
# Two layers: what the demo needs (demo-setup), and the rest of the test rig
# on top of it (setup).  Both keep one virtualenv, .venv.
setup: $(STAMP)/apt $(STAMP)/venv $(STAMP)/haproxy-3.0 $(STAMP)/haproxy-3.2 $(STAMP)/peers $(COLLECTION)

demo-setup: $(STAMP)/apt-demo $(STAMP)/venv-demo $(COLLECTION)

$(STAMP)/apt-demo: tools/apt-install
	@mkdir -p $(STAMP)
	tools/apt-install $(APT_DEMO)
	@touch $@

$(STAMP)/apt: $(STAMP)/apt-demo
	tools/apt-install $(APT_TEST)
	@touch $@

# ansible-core only (demo-requirements.txt); $(STAMP)/venv adds the test tools.
# After apt-demo: on Debian 13 tools/find-python may install python3.13-venv.
$(STAMP)/venv-demo: $(STAMP)/apt-demo demo-requirements.txt tools/find-python
	@mkdir -p $(STAMP)
	@if [ ! -x $(BIN)/python ]; then py=$$(tools/find-python) && echo "$$py -m venv $(VENV)" && $$py -m venv $(VENV); fi
	$(BIN)/pip install -q --disable-pip-version-check -r demo-requirements.txt
	@touch $@

$(STAMP)/venv: $(STAMP)/venv-demo test-requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q -r test-requirements.txt
	@# bigsuds declares suds-jurko, which does not build on Python 3.11+ (docs/f5.md).
	$(BIN)/pip install -q --no-deps bigsuds
	@touch $@

$(STAMP)/haproxy-3.0 $(STAMP)/haproxy-3.2: $(STAMP)/haproxy-%: lab/haproxy/fetch.sh
	@mkdir -p $(STAMP)
	bash lab/haproxy/fetch.sh $*
	@touch $@

$(STAMP)/peers:
	@mkdir -p $(STAMP)
	bash lab/peers/setup.sh
	@touch $@

$(COLLECTION):
	@mkdir -p $(dir $@)
	ln -sfn $(REPO) $@

# ---------------------------------------------------------------- demo
demo: demo-setup
	$(BIN)/python lab/demo.py

# ---------------------------------------------------------------- docs
# The HTML site: modules, roles and the guides (tools/docsite.py).
docs: $(STAMP)/venv
	$(BIN)/python tools/docsite.py --dest $(REPO)/.cache/docsite

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

# ANSIBLE_HOME: with --offline (Galaxy is unreachable) ansible-lint does not put this collection on
# its collection path itself; $(COLLECTIONS) is $$ANSIBLE_HOME/collections, so its syntax check
# resolves gentle.lb's own plugins (the ready playbook's serial uses one of its filters).
lint: setup
	$(TIMED) env ANSIBLE_HOME=$(REPO)/.cache $(BIN)/ansible-lint --offline

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
