# -*- coding: utf-8 -*-
"""health_file bindings: the role drains by moving the file HAProxy's check
probes, with HAProxy's own view (haproxy_member_info) for the capacity floor
and the waits, or with fall x inter seconds when no view is configured."""

import os

import pytest

from conftest import admin_states, assert_no_failures, playbook


@pytest.mark.parametrize("view", ["info", "timer"])
def test_health_file_rollout_fails_no_request(make_lab, view):
    # Three instances with HAProxy's view (the capacity floor reads it), two with the timer.
    lab = make_lab(instances=3 if view == "info" else 2, binding="health_file")
    names = [n.name for n in lab.nodes]
    # With HAProxy's view, batches of two and a floor of two: the files of a
    # batch are moved one after the other, each only once HAProxy has seen the
    # one before (its checks fail), so the guard of the second counts the
    # first as gone and refuses it: web2 waits for the second round.
    extra = {"rolling_deploy_serial": 2, "rolling_deploy_min_active": 2} if view == "info" else {}
    if view == "timer":
        extra["rolling_deploy_bindings"] = [{
            "type": "health_file", "path": "{{ lab_health_file }}", "inter": 0.2, "fall": 2, "rise": 1}]
    lab.start_load()
    run = playbook(lab, extra_vars=extra)
    load = lab.stop_load()

    assert run.rc == 0, run
    assert_no_failures(load)
    assert lab.versions() == dict.fromkeys(names, "v2")
    assert lab.states() == dict.fromkeys(names, "UP")
    assert admin_states(lab) == dict.fromkeys(names, "READY")    # never touched through the socket
    for node in lab.nodes:
        assert os.path.exists(node.health_file) and not os.path.exists(str(node.health_file) + ".rolling_deploy")
    assert min(s["in_rotation"] for s in load["rotation"]) >= len(names) - 1
    if view == "info":
        assert {h: t["round"] for h, t in run.timings.items()} == {"web1": 1, "web2": 2, "web3": 1}
        assert "the capacity floor does not let 2 hosts leave at once" in run.output, run
    else:
        # No view: no guard, a computed wait, and the warning that says so.
        assert "no balancer view" in run.output and "the computed (fall + 1) x inter" in run.output, run
