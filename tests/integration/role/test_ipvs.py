# -*- coding: utf-8 -*-
"""The same role with ipvs bindings, against the real kernel IPVS in a
user-mode Linux guest: every real server rolled from v1 to v2 under load
without a failed request; the same restart without a drain fails requests."""

import json
import os

import pytest

from conftest import IPVS_COUNT as COUNT


@pytest.fixture(scope="module")
def scenario(background):
    """ipvs_scenario.py in the guest, started at collection (conftest.py)."""
    returncode, output, work = background("ipvs")
    path = os.path.join(work, "result.json")
    assert returncode == 0 and os.path.exists(path), (returncode, output[-6000:])
    with open(path) as handle:
        return json.load(handle)


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
