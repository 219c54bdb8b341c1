# -*- coding: utf-8 -*-
"""The proof: a rolling deploy of every instance under load fails no request,
while the same deploy without draining does."""

import pytest

from conftest import INSTALL_SECONDS, NAIVE_PLAYBOOK, admin_states, assert_no_failures, playbook

ALL = ["web1", "web2", "web3", "web4"]


@pytest.mark.parametrize("haproxy", ["2.6", "3.0"])
def test_rolling_deploy_fails_no_request(make_lab, haproxy):
    lab = make_lab(instances=4, haproxy=haproxy)
    lab.start_load()
    run = playbook(lab, extra_vars={"lab_install_seconds": INSTALL_SECONDS if haproxy == "2.6" else 0})
    load = lab.stop_load()

    assert run.rc == 0, run
    assert_no_failures(load)
    assert lab.versions() == dict.fromkeys(ALL, "v2")
    assert admin_states(lab) == dict.fromkeys(ALL, "READY")
    assert lab.states() == dict.fromkeys(ALL, "UP")
    # serial 1: never more than one instance out of rotation.
    assert min(s["in_rotation"] for s in load["rotation"]) >= 3
    # Both versions answered during the run: the load really went through it.
    assert load["versions"].get("v1", 0) > 0 and load["versions"].get("v2", 0) > 0

    timings = run.timings
    assert sorted(timings) == ALL
    for host, entry in timings.items():
        assert entry["result"] == "done", (host, entry)
        for step in ("drain", "deploy", "health", "restore", "total"):
            assert entry[step] is not None and entry[step] >= 0, (host, step, entry)
        if haproxy == "2.6":
            assert entry["deploy"] >= INSTALL_SECONDS, (host, entry)
    assert "host                 result" in run.output      # the summary table


def test_naive_restart_fails_requests(lab):
    """The same load and deploy tasks, restarting without draining: failures.

    This is what proves the load generator can see the failures the role
    prevents: HAProxy keeps sending a node new requests until its health check
    notices it is gone, and its retries give up after about three seconds."""
    lab.start_load()
    run = playbook(lab, NAIVE_PLAYBOOK, extra_vars={"lab_install_seconds": INSTALL_SECONDS})
    load = lab.stop_load()

    assert run.rc == 0, run
    assert lab.versions() == dict.fromkeys(ALL, "v2")
    assert load["failed"] > 0, load["line"]
