# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/integration/ipvs: ipvs_member and ipvs_member_info against the real
kernel IPVS, inside a user-mode Linux guest.

``pytest tests/integration/ipvs`` (``make integration-ipvs``) runs on the host:

* test_ipvs_uml.py boots two guests (lab/uml/run --netns-lab --agent) as soon
  as collection is done and runs the in-guest suite, guest/, split between
  them; every in-guest test is reported as its own host test
  (``test_in_guest[<guest test id>]``);
* test_ipvs_host.py checks what the modules say on a kernel without IPVS and
  without ipvsadm, on the host itself.

guest/ is never collected on the host (it clears the IPVS table and builds
network namespaces); GENTLE_LB_IPVS_GUEST=1 is set where it must be collected.
"""

import os

collect_ignore = [] if os.environ.get("GENTLE_LB_IPVS_GUEST") == "1" else ["guest"]


def pytest_collection_finish(session):
    """Start the guests now: they boot and run while the other tests run."""
    if os.environ.get("GENTLE_LB_IPVS_GUEST") == "1":
        return
    for item in session.items:
        if item.path.name == "test_ipvs_uml.py":
            module = item.module
            suite = module.GuestSuite()
            suite.start()
            session.config.stash[module.GUEST_SUITE_KEY] = suite
            SUITES.append(suite)
            return


SUITES = []


def pytest_terminal_summary(terminalreporter):
    for suite in SUITES:
        if suite.summary:
            terminalreporter.write_line(suite.summary)


def pytest_sessionfinish(session):
    """However the session ends, no guest outlives it."""
    for suite in SUITES:
        suite.stop()
