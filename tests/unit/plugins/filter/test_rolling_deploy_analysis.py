# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The analysis gate's verdict (rolling_deploy_analysis): two readings of a
backend's member entries, in the shape haproxy_member_info returns them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gentle.lb.plugins.filter.rolling_deploy import FilterModule, rolling_deploy_analysis


def entry(name, requests=0, errors_5xx=0, backend="app", econ=0, eresp=0, rtime=10, retries=0, redispatches=0):
    return dict(container=backend, backend=backend, name=name, state="present", health="up",
                requests=requests, total_sessions=requests, balanced_sessions=requests,
                responses={"1xx": 0, "2xx": requests - errors_5xx, "3xx": 0, "4xx": 0, "5xx": errors_5xx,
                           "other": 0},
                connection_errors=econ, response_errors=eresp, retries=retries, redispatches=redispatches,
                response_time_ms=rtime)


# Counters already high before the window: only their growth counts.
BEFORE = [entry("web1", 1000, 5), entry("web2", 1000, 5), entry("web3", 1000, 5)]


def after(web2=(100, 10), web1=(100, 0), web3=(100, 1), **web2_extra):
    return [entry("web1", 1000 + web1[0], 5 + web1[1]),
            entry("web2", 1000 + web2[0], 5 + web2[1], **web2_extra),
            entry("web3", 1000 + web3[0], 5 + web3[1])]


def test_the_filter_is_registered():
    assert FilterModule().filters()["rolling_deploy_analysis"] is rolling_deploy_analysis


def test_every_10th_request_failing_fails_on_both_error_checks_with_the_deltas():
    result = rolling_deploy_analysis(after(), BEFORE, "web2", dict(max_error_rate=0.05, max_error_ratio=2))
    assert result["verdict"] == "fail"
    assert result["node"]["requests"] == 100 and result["node"]["responses_5xx"] == 10
    assert result["node"]["errors"] == 10 and result["node"]["error_rate"] == 0.1
    assert result["others"]["requests"] == 200 and result["others"]["errors"] == 1
    assert result["others"]["error_rate"] == 0.005 and result["others"]["servers"] == 2
    assert result["reasons"] == ["app: error rate 0.1 (10 of 100) is above max_error_rate 0.05",
                                 "app: error rate 0.1 is above max_error_ratio 2 times the others' 0.005"]
    assert result["backends"]["app"]["verdict"] == "fail"


def test_a_node_like_the_others_passes():
    thresholds = dict(max_error_rate=0.05, max_error_ratio=2)
    result = rolling_deploy_analysis(after(web2=(100, 1)), BEFORE, ["web2"], thresholds)
    assert result["verdict"] == "pass" and result["reasons"] == []


def test_the_relative_check_alone_catches_what_the_absolute_one_lets_through():
    thresholds = dict(max_error_rate=0.2, max_error_ratio=3)
    result = rolling_deploy_analysis(after(web3=(100, 0)), BEFORE, "web2", thresholds)
    assert result["verdict"] == "fail" and len(result["reasons"]) == 1 and "max_error_ratio" in result["reasons"][0]
    # Others failing as much: the backend, not the node, is in trouble.
    result = rolling_deploy_analysis(after(web1=(100, 9), web3=(100, 11)), BEFORE, "web2", thresholds)
    assert result["verdict"] == "pass"


def test_too_few_requests_is_no_data_not_a_pass():
    result = rolling_deploy_analysis(after(web2=(5, 5)), BEFORE, "web2", dict(max_error_rate=0.05))
    assert result["verdict"] == "no_data"
    assert result["reasons"] == ["app: 5 request(s) reached the node, fewer than min_requests (20)"]
    result = rolling_deploy_analysis(after(web2=(5, 5)), BEFORE, "web2", dict(max_error_rate=0.05, min_requests=5))
    assert result["verdict"] == "fail"


def test_min_errors_keeps_a_single_error_from_failing_a_node():
    thresholds = dict(max_error_ratio=2, min_errors=3)
    assert rolling_deploy_analysis(after(web2=(100, 2), web3=(100, 0)), BEFORE, "web2",
                                   thresholds)["verdict"] == "pass"
    assert rolling_deploy_analysis(after(web2=(100, 3), web3=(100, 0)), BEFORE, "web2",
                                   thresholds)["verdict"] == "fail"


def test_refused_connections_count_as_errors_beside_the_requests():
    result = rolling_deploy_analysis(after(web2=(90, 0), econ=10, retries=30), BEFORE, "web2",
                                     dict(max_error_rate=0.05))
    assert result["verdict"] == "fail"
    assert result["node"]["connection_errors"] == 10 and result["node"]["retries"] == 30
    assert result["node"]["error_rate"] == 0.1 and "(10 of 100)" in result["reasons"][0]


def test_response_time_absolute_and_relative():
    slow = after(rtime=300)
    assert rolling_deploy_analysis(slow, BEFORE, "web2", dict(max_response_time_ms=250))["verdict"] == "fail"
    result = rolling_deploy_analysis(slow, BEFORE, "web2", dict(max_response_time_ratio=5))
    assert result["verdict"] == "fail" and result["others"]["response_time_ms"] == 10.0
    assert "max_response_time_ratio 5 times the others' 10 ms" in result["reasons"][0]
    assert rolling_deploy_analysis(after(rtime=30), BEFORE, "web2",
                                   dict(max_response_time_ratio=5))["verdict"] == "pass"


def test_no_threshold_set_passes_once_there_is_data():
    assert rolling_deploy_analysis(after(), BEFORE, "web2")["verdict"] == "pass"
    assert rolling_deploy_analysis(after(), BEFORE, "web2", dict(max_error_rate=None,
                                                                 max_error_ratio=""))["verdict"] == "pass"


def test_each_backend_is_compared_with_its_own_servers():
    before = BEFORE + [entry("web2", 0, 0, backend="api"), entry("api1", 0, 0, backend="api")]
    now = after(web2=(100, 1)) + [entry("web2", 50, 10, backend="api"), entry("api1", 50, 0, backend="api")]
    result = rolling_deploy_analysis(dict(members=now), dict(members=before), "web2", dict(max_error_ratio=2))
    assert result["verdict"] == "fail"
    assert result["backends"]["app"]["verdict"] == "pass" and result["backends"]["api"]["verdict"] == "fail"
    assert result["reasons"][0].startswith("api: error rate 0.2 ")
    assert result["node"]["requests"] == 150 and result["node"]["servers"] == 2


def test_a_reload_during_the_window_is_no_data():
    now = after()
    now[1] = entry("web2", 40, 0)                   # counters started again from 0
    result = rolling_deploy_analysis(now, BEFORE, "web2", dict(max_error_rate=0.05))
    assert result["verdict"] == "no_data" and "restarted" in result["reasons"][0]


def test_a_balancer_without_request_counters_is_no_data():
    # ipvs_member_info's entries have no requests or responses.
    ipvs = [dict(container="10.0.0.1:80", name="10.0.0.12:80", state="present", sessions=3),
            dict(container="10.0.0.1:80", name="10.0.0.13:80", state="present", sessions=2)]
    result = rolling_deploy_analysis(ipvs, ipvs, "10.0.0.12:80", dict(max_error_rate=0.05))
    assert result["verdict"] == "no_data" and "IPVS has none" in result["reasons"][0]


@pytest.mark.parametrize("thresholds, message", [
    (dict(max_errors=1), "unknown threshold"),
    (dict(max_error_rate="lots"), "is not a number"),
    (dict(max_error_rate=5), "fraction"),
    (dict(max_error_ratio=-1), "0 or more"),
    (dict(max_response_time_ms=float("nan")), "0 or more"),
    (dict(min_requests=True), "is not a number"),
])
def test_bad_thresholds_are_refused(thresholds, message):
    with pytest.raises(AnsibleFilterError, match=message):
        rolling_deploy_analysis(after(), BEFORE, "web2", thresholds)


def test_a_server_in_no_backend_is_an_error():
    with pytest.raises(AnsibleFilterError, match="web9 in no backend"):
        rolling_deploy_analysis(after(), BEFORE, "web9")
    with pytest.raises(AnsibleFilterError, match="no server named"):
        rolling_deploy_analysis(after(), BEFORE, [])
