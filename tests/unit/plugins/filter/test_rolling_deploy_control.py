# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rollout control in plugins/filter/rolling_deploy.py: the failure
tolerance (rolling_deploy_max_failed), the rollout deadline
(rolling_deploy_deadline), the deploy step's time limit
(rolling_deploy_deploy_timeout) and the failure it records."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gentle.lb.plugins.filter import rolling_deploy as planner

HOSTS = ["web1", "web2", "web3", "web4"]


@pytest.mark.parametrize("value, hosts, allowed", [
    (0, 4, 0), ("0", 4, 0), ("", 4, 0), (None, 4, 0), (2, 4, 2), ("2", 4, 2), (" 3 ", 4, 3),
    ("25%", 4, 1), ("10%", 4, 0), ("10%", 15, 1), ("50%", 5, 2), ("100%", 4, 4), ("0%", 10, 0),
    ("25%", HOSTS, 1),
])
def test_max_failed_forms(value, hosts, allowed):
    assert planner.rolling_deploy_max_failed(value, hosts) == allowed


@pytest.mark.parametrize("value", ["two", "-1", "101%", "1.5", True, "%"])
def test_max_failed_refuses(value):
    with pytest.raises(AnsibleFilterError, match="rolling_deploy_max_failed"):
        planner.rolling_deploy_max_failed(value, 4)


def hostvars(results=None, starts=None):
    found = {}
    for host in HOSTS:
        mine = {}
        if results and host in results:
            mine["_rolling_deploy_result"] = results[host]
        if starts and host in starts:
            mine["_rolling_deploy_marks"] = {"start": starts[host]}
        found[host] = mine
    return found


def test_stop_default_first_failure_stops():
    stop = planner.rolling_deploy_stop(HOSTS, hostvars({"web1": "failed", "web2": "done"}), HOSTS, 0, 0, 100.0)
    assert stop["stopped"] and stop["reason"] == "failed" and stop["error_type"] == "TooManyFailedError"
    # The message the role has always given (tests/integration/role/test_failure.py asserts it).
    assert stop["msg"] == "the rollout stopped because web1 failed earlier in this run"
    assert stop["failed"] == ["web1"]


def test_stop_within_tolerance_goes_on_and_counts_hosts_ansible_removed():
    # web1 failed in the role (tolerated, its errors cleared: back in ansible_play_hosts);
    # web3 went unreachable (out of ansible_play_hosts): two failed hosts.
    vars_ = hostvars({"web1": "failed", "web2": "done"})
    left = ["web1", "web2", "web4"]
    assert not planner.rolling_deploy_stop(HOSTS, vars_, left, "50%", 0, 1.0)["stopped"]
    stop = planner.rolling_deploy_stop(HOSTS, vars_, left, 1, 0, 1.0)
    assert stop["stopped"] and stop["failed"] == ["web1", "web3"] and stop["allowed"] == 1
    assert stop["msg"] == ("the rollout stopped because web1, web3 failed earlier in this run, "
                           "more than rolling_deploy_max_failed=1 allows (1)")


def test_stop_deadline_from_the_first_batch():
    vars_ = hostvars({"web1": "done"}, starts={"web1": 1000.0, "web2": 1040.0})
    assert not planner.rolling_deploy_stop(HOSTS, vars_, HOSTS, 0, 60, 1060.0)["stopped"]
    assert not planner.rolling_deploy_stop(HOSTS, vars_, HOSTS, 0, 0, 5000.0)["stopped"]     # 0: no deadline
    stop = planner.rolling_deploy_stop(HOSTS, vars_, HOSTS, 0, 60, 1061.25)
    assert (stop["stopped"], stop["reason"], stop["error_type"], stop["elapsed"]) == (
        True, "deadline", "RolloutDeadlineError", 61.2)
    assert "rolling_deploy_deadline=60 s has passed: it has run 61.2 s since its first batch started" in stop["msg"]


def test_stop_before_any_batch_started():
    stop = planner.rolling_deploy_stop(HOSTS, hostvars(), HOSTS, 0, 10, 99.0)
    assert not stop["stopped"] and stop["elapsed"] == 0.0


@pytest.mark.parametrize("timeout, started, now, left", [
    (0, 100.0, 500.0, 0), ("0", 100.0, 100.0, 0), (10, 100.0, 100.0, 10), (10, 100.0, 103.5, 7),
    (10, 100.0, 109.9, 1), (10, 100.0, 130.0, 1), ("5", None, 7.0, 5),
])
def test_time_left(timeout, started, now, left):
    assert planner.rolling_deploy_time_left(timeout, started, now) == left


def test_timed_failure_cut_task():
    failure = {"step": "deploy", "msg": "Task failed: Timed out after 4 second(s)"}
    timed = planner.rolling_deploy_timed(failure, {"failed": True, "timedout": {"period": 4}}, 4.3, 5)
    assert (timed["error_type"], timed["reason"], timed["step"]) == ("DeployTimeoutError", "deadline", "deploy")
    assert timed["msg"].startswith("rolling_deploy_deploy_timeout=5 s: a deploy task was cut at its time limit after 4.3 s")


def test_timed_failure_step_ran_past():
    timed = planner.rolling_deploy_timed({"step": "deploy", "msg": "late"}, {"failed": True}, 7.0, 5)
    assert timed["error_type"] == "DeployTimeoutError" and "the deploy step ran past it after 7.0 s" in timed["msg"]


@pytest.mark.parametrize("failure, result, elapsed, timeout", [
    ({"step": "deploy", "msg": "exit 1"}, {"failed": True}, 2.0, 5),          # an ordinary failure, in time
    ({"step": "deploy", "msg": "exit 1"}, {"timedout": {"period": 3}}, 9.0, 0),  # no limit set (the task's own timeout)
    ({"step": "health", "msg": "503"}, {"failed": True}, 9.0, 5),             # another step
    (None, {}, 9.0, 5),
])
def test_timed_failure_left_alone(failure, result, elapsed, timeout):
    assert planner.rolling_deploy_timed(failure, result, elapsed, timeout) == failure


def test_record_keeps_the_error_type_and_reason():
    failure = {"step": "deploy", "msg": "cut", "error_type": "DeployTimeoutError", "reason": "deadline"}
    record = planner.rolling_deploy_record("web1", {}, {}, {"start": 1.0, "end": 9.0}, failure, 1)
    assert (record["result"], record["step"], record["error_type"], record["reason"]) == (
        "failed", "deploy", "DeployTimeoutError", "deadline")
