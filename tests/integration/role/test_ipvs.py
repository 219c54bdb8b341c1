# -*- coding: utf-8 -*-
"""The same role with ipvs bindings, against the real kernel IPVS in a
user-mode Linux guest: every real server rolled from v1 to v2 under load
without a failed request; the same restart without a drain fails requests."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
RUN = os.path.join(REPO, "lab", "uml", "run")
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
# Two real servers: every Ansible task costs about a second in the user-mode kernel.
COUNT = 2


@pytest.fixture(scope="module")
def scenario():
    if not shutil.which("linux.uml", path=os.environ.get("PATH", "") + ":/usr/bin"):
        pytest.fail("linux.uml is not installed: the IPVS scenario needs Debian's user-mode-linux and "
                    "ipvsadm packages (make setup installs them)")
    work = tempfile.mkdtemp(prefix="gentle-lb-role-ipvs-")
    os.chmod(work, 0o755)
    try:
        proc = subprocess.run([sys.executable, RUN, "--netns-lab", "--timeout", "900",
                               "--env", "LAB_RS_COUNT=%d" % COUNT, "--",
                               VENV_PYTHON, os.path.join(HERE, "ipvs_scenario.py"), work],
                              capture_output=True, text=True, cwd=REPO, timeout=960, check=False)
        path = os.path.join(work, "result.json")
        assert proc.returncode == 0 and os.path.exists(path), (proc.returncode, proc.stdout[-3000:],
                                                               proc.stderr[-3000:])
        with open(path) as handle:
            yield json.load(handle)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_ipvs_rollout_fails_no_request(scenario):
    rollout = scenario["rollout"]
    load = rollout["load"]
    assert rollout["rc"] == 0, rollout["output"]
    assert load["sent"] > 200 and load["failed"] == 0, (load, rollout["output"][-3000:])
    assert rollout["versions"] == dict(("rs%d" % n, "v2") for n in range(1, COUNT + 1))
    # Every real server back at its weight from before the drain.
    assert rollout["weights"] == dict(("172.16.%d.2" % n, 1) for n in range(1, COUNT + 1))
    # One gentle.lb.member call per real server and round, delegated to the director.
    assert "(item=ipvs drained tcp:10.0.0.100:8080: 172.16.1.2 via director)" in rollout["output"], rollout["output"]


def test_ipvs_restart_without_drain_fails_requests(scenario):
    load = scenario["naive"]["load"]
    assert load["failed"] > 0, load
