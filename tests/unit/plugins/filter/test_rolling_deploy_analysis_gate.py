# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's analysis gate around the verdict: the readings it makes (one
per HAProxy balancer), the verdict per host from their registers, what it
says about bindings it cannot read, and where the verdict is recorded."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gentle.lb.plugins.filter.rolling_deploy import (
    ANALYSIS_FAILED, FilterModule, rolling_deploy_analysis_calls, rolling_deploy_analysis_uncovered,
    rolling_deploy_analysis_verdict, rolling_deploy_timeline_analysis, rolling_deploy_timeline_failure)


def binding(server, **extra):
    return dict(dict(type="haproxy", delegate_to="lb1", backend="app", server=server, socket="/run/h.sock"), **extra)


def hostvars(**bindings):
    return dict((host, dict(_rolling_deploy_me=dict(bindings=found, settings={}))) for host, found in bindings.items())


def entry(name, requests, errors, backend="app", address="10.0.0.1", port=80):
    return dict(container=backend, backend=backend, name=name, address=address, port=port, requests=requests,
                responses={"1xx": 0, "2xx": requests - errors, "3xx": 0, "4xx": 0, "5xx": errors, "other": 0},
                connection_errors=0, response_errors=0, retries=0, redispatches=0, response_time_ms=5)


def register(calls, readings, failed=()):
    results = []
    for call, members in zip(calls, readings):
        result = dict(item=call, members=members, call_failed=call["label"] in failed)
        if call["label"] in failed:
            result["msg"] = "cannot connect to /run/h.sock"
        results.append(result)
    return dict(results=results)


LIMITS = dict(max_error_rate=0.05)


def test_the_filters_are_registered():
    filters = FilterModule().filters()
    for name in ("rolling_deploy_analysis_calls", "rolling_deploy_analysis_verdict",
                 "rolling_deploy_analysis_uncovered", "rolling_deploy_warn", "rolling_deploy_timeline_analysis"):
        assert name in filters


def test_one_reading_per_balancer_with_the_binding_connection_and_no_member_filter():
    hv = hostvars(web1=[binding("web1")], web2=[binding("web2")],
                  web3=[binding("web3", socket="/run/other.sock", weight=5)])
    calls = rolling_deploy_analysis_calls(["web1", "web2", "web3"], hv, 2)
    assert len(calls) == 2
    assert calls[0]["options"] == dict(socket="/run/h.sock", backend=["app"])
    assert calls[0]["hosts"] == ["web1", "web2"] and calls[0]["round"] == 2
    assert calls[0]["servers"]["web2"] == dict(names=["web2"], addresses=[])
    assert calls[1]["options"] == dict(socket="/run/other.sock", backend=["app"])   # no weight, no server
    assert calls[0]["delegate_to"] == "lb1" and calls[0]["type"] == "haproxy"


def test_a_binding_without_backend_reads_every_backend_and_other_types_are_not_read():
    hv = hostvars(web1=[binding("web1", backend=None), dict(type="ipvs", delegate_to="d1", address="10.0.0.1")],
                  web2=[binding("web2"), dict(type="health_file", path="/srv/health")])
    calls = rolling_deploy_analysis_calls(["web1", "web2"], hv)
    assert len(calls) == 1 and "backend" not in calls[0]["options"] and "every backend" in calls[0]["label"]
    said = rolling_deploy_analysis_uncovered(["web1", "web2"], hv)
    assert len(said) == 2 and "IPVS has no request counters" in said[0] and "health_file" in said[1]


def test_a_delegate_list_is_one_reading_per_balancer():
    hv = hostvars(web1=[binding("web1", delegate_to=["lb1", "lb2"])])
    assert [c["delegate_to"] for c in rolling_deploy_analysis_calls(["web1"], hv)] == ["lb1", "lb2"]


def readings(web2_errors):
    before = [entry("web1", 1000, 0), entry("web2", 1000, 0, address="10.0.0.2")]
    after = [entry("web1", 1100, 0), entry("web2", 1100, web2_errors, address="10.0.0.2")]
    return before, after


def test_the_verdict_per_host_from_the_two_registers():
    hv = hostvars(web1=[binding("web1")], web2=[binding("web2")])
    calls = rolling_deploy_analysis_calls(["web1", "web2"], hv)
    before, after = readings(10)
    first, last = register(calls, [before]), register(calls, [after])
    bad = rolling_deploy_analysis_verdict("web2", first, last, LIMITS, 1)
    assert bad["verdict"] == "fail" and bad["error_type"] == ANALYSIS_FAILED
    assert bad["node"]["requests"] == 100 and bad["node"]["responses_5xx"] == 10
    assert "max_error_rate" in bad["msg"]
    good = rolling_deploy_analysis_verdict("web1", first, last, LIMITS, 1)
    assert good["verdict"] == "pass" and "error_type" not in good
    # Another round's registers are not this round's; a host without a reading has no verdict.
    assert rolling_deploy_analysis_verdict("web2", first, last, LIMITS, 2) is None
    assert rolling_deploy_analysis_verdict("web9", first, last, LIMITS, 1) is None


def test_a_member_named_by_address_is_found_in_the_reading():
    hv = hostvars(web2=[dict(type="haproxy", delegate_to="lb1", backend="app", address="10.0.0.2",
                             socket="/run/h.sock")])
    calls = rolling_deploy_analysis_calls(["web2"], hv)
    before, after = readings(10)
    result = rolling_deploy_analysis_verdict("web2", register(calls, [before]), register(calls, [after]), LIMITS)
    assert result["verdict"] == "fail"


def test_a_failed_reading_is_no_data_not_a_failure():
    hv = hostvars(web2=[binding("web2")])
    calls = rolling_deploy_analysis_calls(["web2"], hv)
    before, after = readings(10)
    result = rolling_deploy_analysis_verdict("web2", register(calls, [before]),
                                             register(calls, [after], failed=[calls[0]["label"]]), LIMITS)
    assert result["verdict"] == "no_data" and "cannot connect" in result["msg"]
    assert "error_type" not in result


def test_one_failing_balancer_of_two_fails_the_host():
    hv = hostvars(web2=[binding("web2", delegate_to=["lb1", "lb2"])])
    calls = rolling_deploy_analysis_calls(["web2"], hv)
    good_before, good_after = readings(0)
    bad_before, bad_after = readings(20)
    result = rolling_deploy_analysis_verdict("web2", register(calls, [good_before, bad_before]),
                                             register(calls, [good_after, bad_after]), LIMITS)
    assert result["verdict"] == "fail" and sorted(result["balancers"]) == sorted(c["label"] for c in calls)
    assert all(reason.startswith("lb2: ") for reason in result["reasons"]), result["reasons"]


def test_too_little_traffic_is_no_data():
    hv = hostvars(web2=[binding("web2")])
    calls = rolling_deploy_analysis_calls(["web2"], hv)
    before = [entry("web1", 10, 0), entry("web2", 10, 0)]
    after = [entry("web1", 15, 0), entry("web2", 15, 5)]
    result = rolling_deploy_analysis_verdict("web2", register(calls, [before]), register(calls, [after]), LIMITS)
    assert result["verdict"] == "no_data" and "min_requests" in result["msg"]


def test_the_verdict_goes_on_the_soak_phase():
    timeline = [dict(phase="restore"), dict(phase="soak")]
    marked = rolling_deploy_timeline_analysis(timeline, dict(verdict="pass"))
    assert marked[1]["analysis"] == dict(verdict="pass") and "analysis" not in timeline[1]
    assert "analysis" not in marked[0]


def test_the_rollback_drain_is_a_phase_of_the_failed_host():
    drain = dict(results=[dict(item=dict(round=1, type="haproxy", hosts=["web2"], members=[
        dict(host="web2", values=["web2"], binding=1, label=None)], member_keys=["server"],
        options=dict(backend="app", state="drained", wait=True), label="web2", delegate_to="lb1"),
        members=[dict(container="app", name="web2", state="drained", sessions=0)],
        started=10.0, ended=11.0, waited=0.5, call_failed=False)])
    timeline = [dict(phase="soak", started=5.0, ended=9.0, batch=2, round=1)]
    added = rolling_deploy_timeline_failure(timeline, "web2", dict(rollback_drain=drain), {}, 12.0)
    assert [p["phase"] for p in added] == ["soak", "rollback_drain"], added
    assert added[1]["result"] == "ok"
