# -*- coding: utf-8 -*-
"""Fixtures for the rolling_deploy role's integration tests.

Every test gets its own lab (lab/rolling_lab.py): a real HAProxy with four app
instances (separate processes, deployed through lab/app/ctl.py as the
playbook's deploy tasks do), a load generator and an in-rotation sampler, all
on 127.0.0.1, all torn down by the fixture's finalizer.
"""

import json
import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(HERE))

from helpers import run_playbook  # noqa: E402
from lab.rolling_lab import RollingLab  # noqa: E402

PLAYBOOK = os.path.join(REPO, "playbooks", "rolling_deploy.yml")
MEMBER_PLAYBOOK = os.path.join(REPO, "playbooks", "member.yml")
NAIVE_PLAYBOOK = os.path.join(REPO, "lab", "demo", "naive.yml")
ROLLBACK_TASKS = os.path.join(REPO, "lab", "demo", "rollback.yml")
FILES = os.path.join(HERE, "files")

# Longer than HAProxy's three connection retries (1 s apart): what a real
# release takes to unpack and start, and what makes an undrained restart fail.
INSTALL_SECONDS = 3.5


@pytest.fixture
def make_lab(request):
    """make_lab(**kwargs) -> a started RollingLab, stopped at teardown."""
    labs = []

    def make(**kwargs):
        lab = RollingLab(**kwargs)
        labs.append(lab)
        return lab.start()

    def stop_all():
        for lab in labs:
            lab.stop()

    request.addfinalizer(stop_all)
    return make


@pytest.fixture
def lab(make_lab):
    return make_lab(instances=4)


class Run(object):
    """An ansible-playbook run: rc, output, and what the role published."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr

    @property
    def stats(self):
        """The set_stats artifacts (ANSIBLE_SHOW_CUSTOM_STATS), {} if none."""
        match = re.search(r"^\tRUN: (.*)$", self.output, re.M)
        return json.loads(match.group(1)) if match else {}

    @property
    def timings(self):
        return self.stats.get("rolling_deploy_timings", {})

    def __repr__(self):
        return "Run(rc=%s)\n%s" % (self.rc, self.output[-6000:])


def playbook(lab, path=PLAYBOOK, extra_vars=None, timeout=300, args=(), env=None):
    """Run a playbook against the lab's inventory."""
    proc = run_playbook(path, extra_vars=extra_vars, inventory=lab.inventory, timeout=timeout,
                        env=dict(env or {}, ANSIBLE_SHOW_CUSTOM_STATS="1"), args=args)
    return Run(proc)


def admin_states(lab):
    """{server: admin state} from HAProxy: READY, DRAIN or MAINT."""
    result = {}
    for row in lab.haproxy.servers_state("app"):
        admin = int(row["srv_admin_state"])
        # SRV_ADMF_*: F/I/C/R/H-MAINT = 0x01 0x02 0x04 0x20 0x40, F/I-DRAIN = 0x08 0x10.
        result[row["srv_name"]] = "MAINT" if admin & 0x67 else ("DRAIN" if admin & 0x18 else "READY")
    return result


def assert_no_failures(summary):
    assert summary["sent"] > 200, summary["line"]
    assert summary["failed"] == 0, "%s\n%s" % (summary["line"], summary["failure_samples"])
