# -*- coding: utf-8 -*-
"""The proof: a rolling deploy of every instance under load fails no request,
while the same deploy without draining does."""

import pytest

from conftest import INSTALL_SECONDS, NAIVE_PLAYBOOK, admin_states, assert_no_failures, check_timeline, playbook


@pytest.mark.parametrize("haproxy", ["2.6", "3.0", "3.2"])
def test_rolling_deploy_fails_no_request(make_lab, haproxy):
    # 2.6: the proof (four instances, a realistic install time); 3.0 and 3.2:
    # the same role against the other LTS lines, two instances, no install pause.
    lab = make_lab(instances=4 if haproxy == "2.6" else 2, haproxy=haproxy)
    hosts = [n.name for n in lab.nodes]
    lab.start_load()
    run = playbook(lab, extra_vars={"lab_install_seconds": INSTALL_SECONDS if haproxy == "2.6" else 0})
    load = lab.stop_load()

    assert run.rc == 0, run
    assert_no_failures(load)
    assert lab.versions() == dict.fromkeys(hosts, "v2")
    assert admin_states(lab) == dict.fromkeys(hosts, "READY")
    assert lab.states() == dict.fromkeys(hosts, "UP")
    # serial 1: never more than one instance out of rotation.
    assert min(s["in_rotation"] for s in load["rotation"]) >= len(hosts) - 1
    # Both versions answered during the run: the load really went through it.
    assert load["versions"].get("v1", 0) > 0 and load["versions"].get("v2", 0) > 0

    timings = run.timings
    assert sorted(timings) == hosts
    for host, entry in timings.items():
        assert entry["result"] == "done", (host, entry)
        for step in ("drain", "deploy", "health", "restore", "total"):
            assert entry[step] is not None and entry[step] >= 0, (host, step, entry)
        if haproxy == "2.6":
            assert entry["deploy"] >= INSTALL_SECONDS, (host, entry)
    assert "host                 result" in run.output      # the summary table

    # The timeline: serial 1, so host n was batch n; one binding each; the
    # one drain call waited itself; every phase done.
    phases = check_timeline(run, {h: n for n, h in enumerate(hosts, 1)}, dict.fromkeys(hosts, 1))
    for host, mine in phases.items():
        assert [p["phase"] for p in mine] == ["drain", "deploy", "health", "restore"], (host, mine)
        assert all(p["result"] == "ok" and p["error_type"] is None for p in mine), mine
        assert mine[0]["wait_in_call"] is True and mine[0]["bindings"][0]["container"] == ["app"], mine
        if haproxy == "2.6":
            assert mine[1]["seconds"] >= INSTALL_SECONDS, mine


def test_naive_restart_fails_requests(lab):
    """The same load and deploy tasks, restarting without draining: failures.

    This is what proves the load generator can see the failures the role
    prevents: HAProxy keeps sending a node new requests until its health check
    notices it is gone, and its retries give up after about three seconds.
    Two nodes are enough to see it."""
    lab.start_load()
    run = playbook(lab, NAIVE_PLAYBOOK, extra_vars={"lab_install_seconds": INSTALL_SECONDS},
                   args=("--limit", "web1,web2"))
    load = lab.stop_load()

    assert run.rc == 0, run
    assert lab.versions() == {"web1": "v2", "web2": "v2", "web3": "v1", "web4": "v1"}
    assert load["failed"] > 0, load["line"]


def test_check_mode_changes_nothing_and_reports_the_floor(make_lab):
    """--check: every binding says what it would do (the health gate and the
    waits are skipped), nothing changes; a capacity refusal shows up as it
    would in the real run."""
    lab = make_lab(instances=2)
    # An approval point is said, not taken: the whole plan shows.
    run = playbook(lab, extra_vars={"rolling_deploy_approval_after": "1"}, args=("--check", "--diff", "-v"))
    assert run.rc == 0, run
    assert admin_states(lab) == {"web1": "READY", "web2": "READY"}
    assert lab.versions() == {"web1": "v1", "web2": "v1"}
    assert "would be drained (check mode)" in run.output, run
    assert "a real run stops after batch 1 for an approval" in run.output, run
    phases = check_timeline(run, {"web1": 1, "web2": 2})
    assert all(p["check_mode"] and p["result"] == "ok" for mine in phases.values() for p in mine), phases

    run = playbook(lab, extra_vars={"rolling_deploy_min_active": 2}, args=("--check",))
    assert run.rc != 0, run
    assert "below min_active=2" in run.output, run
    # The refused host's one phase names the step and the guard's error_type.
    (drain,) = check_timeline(run, {"web1": 1})["web1"]
    assert (drain["phase"], drain["result"], drain["step"], drain["error_type"], drain["check_mode"]) == (
        "drain", "failed", "drain", "GuardRefusedError", True), drain
    assert drain["bindings"][0]["error_type"] == "GuardRefusedError" and "min_active" in drain["msg"], drain
    assert admin_states(lab) == {"web1": "READY", "web2": "READY"}
