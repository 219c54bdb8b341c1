# -*- coding: utf-8 -*-
"""The capacity floor holds across a batch: with one instance already down
and serial 2, the rollout never leaves fewer than min_active instances in
rotation -- HAProxy's own view, sampled every 50 ms -- and still completes."""

from conftest import admin_states, assert_no_failures, check_timeline, playbook

ALL = ["web1", "web2", "web3", "web4"]


def test_serial_two_never_goes_below_min_active(lab):
    lab.stop_instance("web4")
    lab.haproxy.wait_status("app", "web4", "DOWN")
    assert lab.in_rotation() == 3

    lab.start_load()
    run = playbook(lab, extra_vars={"rolling_deploy_serial": "2", "rolling_deploy_min_active": 2})
    load = lab.stop_load()

    assert run.rc == 0, run
    assert_no_failures(load)
    counts = [s["in_rotation"] for s in load["rotation"]]
    assert len(counts) > 50
    assert min(counts) == 2, sorted(set(counts))   # reached the floor, never below
    assert lab.versions() == dict.fromkeys(ALL, "v2")
    assert admin_states(lab) == dict.fromkeys(ALL, "READY")
    # web2 could not leave with web1 (only web3 would have been left): it
    # waited for the second round of the first batch.  In the second batch
    # web4 was down, so web3 and web4 went together.
    rounds = {h: t["round"] for h, t in run.timings.items()}
    assert rounds == {"web1": 1, "web2": 2, "web3": 1, "web4": 1}, run.timings
    # The timeline says the same: serial 2 made two batches, web2 left in
    # round 2 only after web1 was back.
    phases = check_timeline(run, {"web1": 1, "web2": 1, "web3": 2, "web4": 2}, rounds)
    assert phases["web1"][-1]["ended"] <= phases["web2"][0]["started"]
    # web1's drain: refused with web2, then made alone - one binding entry, two calls.
    assert phases["web1"][0]["bindings"][0]["calls"] == 2, phases["web1"]


def test_floor_that_cannot_be_met_fails_before_touching_anything(lab):
    lab.stop_instance("web4")
    lab.haproxy.wait_status("app", "web4", "DOWN")
    run = playbook(lab, extra_vars={"rolling_deploy_min_active": 3})

    assert run.rc != 0, run
    assert "rolling_deploy: web1 failed at step drain (see rolling_deploy_bindings" in run.output, run
    assert "below min_active=3" in run.output, run
    assert "nothing was changed on its load balancers" in run.output, run
    assert admin_states(lab) == dict.fromkeys(ALL, "READY")
    assert lab.versions() == {"web1": "v1", "web2": "v1", "web3": "v1", "web4": "down"}
    (drain,) = check_timeline(run, {"web1": 1})["web1"]
    assert (drain["result"], drain["step"], drain["error_type"]) == ("failed", "drain", "GuardRefusedError"), drain
