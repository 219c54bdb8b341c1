# -*- coding: utf-8 -*-
"""A failed node stops the rollout, under load, without a failed request:
the failed node is left drained, put back, or rolled back (per
rolling_deploy_on_failure), the nodes after it are not touched, and a rerun
resumes where the rollout stopped."""

import os

from conftest import FILES, ROLLBACK_TASKS, admin_states, assert_no_failures, check_timeline, playbook

BROKEN = {"lab_versions": {"web2": "v2-broken"}, "lab_start_timeout": 2}


def test_deploy_fails_on_second_node_left_drained_then_rerun_resumes(lab):
    before = lab.pids()
    lab.start_load()
    run = playbook(lab, extra_vars=dict(BROKEN))
    states, versions, after = admin_states(lab), lab.versions(), lab.pids()

    assert run.rc != 0, run
    assert "rolling_deploy: web2 failed at step deploy (see rolling_deploy_tasks_file" in run.output, run
    assert "it is left drained on every binding (rolling_deploy_on_failure=leave_drained;" in run.output, run
    assert states == {"web1": "READY", "web2": "DRAIN", "web3": "READY", "web4": "READY"}
    assert versions == {"web1": "v2", "web2": "v2-broken", "web3": "v1", "web4": "v1"}
    assert {h: after[h] for h in ("web3", "web4")} == {h: before[h] for h in ("web3", "web4")}
    assert run.timings["web1"]["result"] == "done"
    assert run.timings["web2"]["result"] == "failed" and run.timings["web2"]["step"] == "deploy"
    assert "web3" not in run.timings and "web4" not in run.timings
    phases = check_timeline(run, {"web1": 1, "web2": 2})
    assert [p["phase"] for p in phases["web1"]] == ["drain", "deploy", "health", "restore"]
    assert [(p["phase"], p["result"], p["step"]) for p in phases["web2"]] == [
        ("drain", "ok", None), ("deploy", "failed", "deploy")], phases["web2"]
    assert phases["web2"][-1]["msg"] == run.timings["web2"]["msg"], phases["web2"]

    # Fix the cause and run again: web1 is skipped, web2 is redeployed (it is
    # still drained), web3 and web4 are rolled -- still without a failed request.
    rerun = playbook(lab, extra_vars={"rolling_deploy_skip_deployed": True})
    load = lab.stop_load()

    assert rerun.rc == 0, rerun
    assert_no_failures(load)
    assert lab.versions() == dict.fromkeys(["web1", "web2", "web3", "web4"], "v2")
    assert admin_states(lab) == dict.fromkeys(["web1", "web2", "web3", "web4"], "READY")
    assert {h: t["result"] for h, t in rerun.timings.items()} == {
        "web1": "skipped", "web2": "done", "web3": "done", "web4": "done"}


def test_health_gate_fails_rollback(lab):
    """web2 deploys a build that starts but is not the expected version: the
    health gate fails; rollback puts v1 back, checks it and restores it."""
    lab.start_load()
    run = playbook(lab, extra_vars={
        "lab_versions": {"web2": "v2-wrong"},
        "rolling_deploy_health_body": "^OK v2$",
        "rolling_deploy_health_retries": 3,
        "rolling_deploy_on_failure": "rollback",
        "rolling_deploy_rollback_tasks_file": ROLLBACK_TASKS,
        "rolling_deploy_rollback_health_body": "^OK v1$",
    })
    load = lab.stop_load()

    assert run.rc != 0, run
    assert "rolling_deploy: web2 failed at step health (see rolling_deploy_health_url" in run.output, run
    assert "health gate: GET http://127.0.0.1:%d/health answered 200 OK v2-wrong" % lab.node("web2").port in run.output
    assert "it was rolled back (rolling_deploy_rollback_tasks_file), passed the health gate" in run.output, run
    assert_no_failures(load)
    assert admin_states(lab) == dict.fromkeys(["web1", "web2", "web3", "web4"], "READY")
    assert lab.versions() == {"web1": "v2", "web2": "v1", "web3": "v1", "web4": "v1"}
    assert lab.states()["web2"] == "UP"
    phases = check_timeline(run, {"web1": 1, "web2": 2})
    assert [(p["phase"], p["result"]) for p in phases["web2"]] == [
        ("drain", "ok"), ("deploy", "ok"), ("health", "failed"), ("rollback", "ok"), ("rollback_health", "ok"),
        ("rollback_restore", "ok")], phases["web2"]
    assert "answered 200 OK v2-wrong" in phases["web2"][2]["msg"] and phases["web2"][2]["step"] == "health"


def test_deploy_fails_restore_puts_it_back(lab):
    """on_failure=restore: the broken node goes back to READY at once; HAProxy's
    health check keeps it DOWN, so it gets no traffic."""
    lab.start_load()
    run = playbook(lab, extra_vars=dict(BROKEN, rolling_deploy_on_failure="restore"))
    load = lab.stop_load()

    assert run.rc != 0, run
    assert "it was put back into rotation as it is (rolling_deploy_on_failure=restore)" in run.output, run
    assert "health now: app down" in run.output, run
    assert_no_failures(load)
    assert admin_states(lab) == dict.fromkeys(["web1", "web2", "web3", "web4"], "READY")
    assert lab.states()["web2"] == "DOWN"
    assert lab.versions() == {"web1": "v2", "web2": "v2-broken", "web3": "v1", "web4": "v1"}
    phases = check_timeline(run, {"web1": 1, "web2": 2})
    assert [(p["phase"], p["result"]) for p in phases["web2"]] == [
        ("drain", "ok"), ("deploy", "failed"), ("failure_restore", "ok")], phases["web2"]


def test_role_stops_by_itself_without_max_fail_percentage(lab):
    """A play without max_fail_percentage goes on to the next batch after a
    failure (serial 2: the batch did not fail entirely); the role refuses to
    touch the hosts of the next batch."""
    run = playbook(lab, os.path.join(FILES, "no_max_fail.yml"), extra_vars=dict(BROKEN, lab_versions={"web1": "v2-broken"}))

    assert run.rc != 0, run
    assert "rolling_deploy: web1 failed at step deploy" in run.output, run
    # The next batch is refused as a whole, before anything is touched.
    assert ("rolling_deploy: not touching web3, web4: the rollout stopped because web1 failed earlier in this run"
            in run.output), run
    # web2 was in web1's batch: it finished its own node.
    assert admin_states(lab) == {"web1": "DRAIN", "web2": "READY", "web3": "READY", "web4": "READY"}
    assert lab.versions() == {"web1": "v2-broken", "web2": "v2", "web3": "v1", "web4": "v1"}


NEIGHBOUR_THEN_FAIL = """---
- name: Someone else takes web2 out meanwhile (another job, an operator)
  gentle.lb.haproxy_member:
    socket: "{{ hostvars['lb1'].lab_haproxy_socket }}"
    backend: app
    server: web2
    state: absent
  delegate_to: lb1
  when: inventory_hostname == 'web1'

- name: The check after the restore fails
  ansible.builtin.fail:
    msg: after_restore check failed on purpose
"""


def test_rollback_of_a_node_in_rotation_that_cannot_be_drained_leaves_it_as_it_is(lab, tmp_path):
    """web1 fails after its restore (after_restore hook) while a neighbour was
    taken out by someone else: draining web1 for its rollback would cross
    min_active, so it is not rolled back, it stays in rotation on v2, and the
    message says so (not "left drained")."""
    hook = tmp_path / "after_restore.yml"
    hook.write_text(NEIGHBOUR_THEN_FAIL)
    run = playbook(lab, extra_vars={
        "rolling_deploy_min_active": 3,
        "rolling_deploy_after_restore_tasks_file": str(hook),
        "rolling_deploy_on_failure": "rollback",
        "rolling_deploy_rollback_tasks_file": ROLLBACK_TASKS,
        "rolling_deploy_rollback_health_body": "^OK v1$",
    })

    assert run.rc != 0, run
    assert "rolling_deploy: web1 failed at step after_restore" in run.output, run
    assert "it was not rolled back: it is in rotation on the new version and could not be drained first" in run.output, run
    assert "left drained" not in run.output, run
    assert lab.versions() == {"web1": "v2", "web2": "v1", "web3": "v1", "web4": "v1"}
    assert admin_states(lab) == {"web1": "READY", "web2": "MAINT", "web3": "READY", "web4": "READY"}
    timings = run.timings["web1"]
    assert timings["result"] == "failed" and timings["step"] == "after_restore", timings
    phases = check_timeline(run, {"web1": 1})
    drain = [p for p in phases["web1"] if p["phase"] == "rollback_drain"]
    assert drain and drain[0]["result"] == "failed", phases["web1"]
    assert drain[0]["error_type"] == "GuardRefusedError", drain[0]
    # The rollback phase records why it did not run; nothing after it ran.
    assert [p["phase"] for p in phases["web1"]][-2:] == ["rollback_drain", "rollback"], phases["web1"]
    assert phases["web1"][-1]["result"] == "failed", phases["web1"][-1]
    assert phases["web1"][-1]["msg"].startswith("not rolled back: it is in rotation"), phases["web1"][-1]
