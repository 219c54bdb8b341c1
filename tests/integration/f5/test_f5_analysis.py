# -*- coding: utf-8 -*-
"""The analysis gate on F5, from real readings: the role's readings
(gentle.lb.rolling_deploy_analysis_calls, for an f5 binding) run as
gentle.lb.f5_pool_member_info against the emulator before and after traffic
it spreads over the pool, and the role's verdict filter judges them.

The emulator counts what it sent each member (POST /_emulator/traffic, by
its load balancing, only to members that take new connections), so a node
its monitor marks down for part of the window really gets less.
"""
import sys

import pytest

import helpers
from conftest import conn

sys.path.insert(0, helpers.ensure_collection_link())
# pylint: disable-next=wrong-import-position
from ansible_collections.gentle.lb.plugins.filter.rolling_deploy import (  # noqa: E402
    rolling_deploy_analysis_calls, rolling_deploy_analysis_verdict)

NODE = "10.0.0.2"


def the_calls(f5, **extra):
    """The role's readings for web1..web3 bound to pool web by address and port."""
    hostvars = {}
    for index in (1, 2, 3):
        binding = dict(conn(f5, **extra), type="f5", delegate_to="localhost", pool="web",
                       address="10.0.0.%d" % index, port=80)
        hostvars["web%d" % index] = dict(_rolling_deploy_me=dict(bindings=[binding], settings={}))
    calls = rolling_deploy_analysis_calls(sorted(hostvars), hostvars)
    assert len(calls) == 1 and calls[0]["options"]["pool"] == ["web"]
    return calls


def read(calls):
    """A register of the readings, as the role's looped task makes it."""
    results = []
    for call in calls:
        result = helpers.run_module("f5_pool_member_info", call["options"])
        assert not result.failed, result
        results.append(dict(result, item=call))
    return dict(results=results)


def test_a_node_taking_its_share_passes_and_f5_says_what_it_does_not_offer(f5):
    calls = the_calls(f5)
    first = read(calls)
    f5.send_traffic("web", 90, requests_per_connection=4, request_bytes=200, response_bytes=2000)
    last = read(calls)
    reading = dict((m["name"], m) for m in last["results"][0]["members"])
    # What the device counted is what it was sent: 30 connections of 4 requests each per member.
    assert reading["10.0.0.2:80"]["total_connections"] == 30 and reading["10.0.0.2:80"]["total_requests"] == 120
    assert reading["10.0.0.2:80"]["bits_in"] == 120 * 2000 * 8 and reading["10.0.0.2:80"]["bits_out"] == 120 * 200 * 8
    result = rolling_deploy_analysis_verdict("web2", first, last, dict(min_traffic_share=0.8, max_error_rate=0.01))
    assert result["verdict"] == "pass", result
    assert result["node"]["requests"] == 120 and result["node"]["traffic_share"] == 1.0
    assert "max_error_rate: not offered by F5" in result["msg"]
    # Only thresholds F5 cannot judge: no verdict, and the reason says why.
    alone = rolling_deploy_analysis_verdict("web2", first, last, dict(max_error_rate=0.01))
    assert alone["verdict"] == "no_data" and "not offered by F5" in alone["msg"]


def test_a_node_its_monitor_marks_down_for_half_the_soak_fails_on_its_share(f5):
    f5.set_pool_monitor("web", "/Common/http")
    calls = the_calls(f5)
    first = read(calls)
    f5.send_traffic("web", 60)
    f5.set_member(pool="web", address=NODE, port=80, health="down")      # the new build flaps
    f5.send_traffic("web", 60)
    f5.set_member(pool="web", address=NODE, port=80, health="up")
    last = read(calls)
    result = rolling_deploy_analysis_verdict("web2", first, last, dict(min_traffic_share=0.8))
    assert result["verdict"] == "fail" and result["error_type"] == "AnalysisFailedError"
    # Each connection carried one request (the default), so requests are the traffic judged.
    assert "took 20 of the 120 new requests" in result["msg"], result["msg"]
    assert rolling_deploy_analysis_verdict("web1", first, last, dict(min_traffic_share=0.8))["verdict"] == "pass"


def test_a_node_offline_at_the_end_of_the_soak_fails(f5):
    f5.set_pool_monitor("web", "/Common/http")
    calls = the_calls(f5)
    first = read(calls)
    f5.send_traffic("web", 60)
    f5.set_member(pool="web", address=NODE, port=80, health="down")
    last = read(calls)
    result = rolling_deploy_analysis_verdict("web2", first, last, dict(min_traffic_share=0.5))
    assert result["verdict"] == "fail"
    assert "the device marks it offline at the end of the window (Pool member has been marked down by a monitor)" \
        in result["msg"]


@pytest.mark.parametrize("transport", ["soap"])
def test_soap_readings_carry_the_same_counters(f5, transport):
    calls = the_calls(f5, transport=transport)
    first = read(calls)
    f5.send_traffic("web", 30, requests_per_connection=2, response_bytes=100)
    last = read(calls)
    node = dict((m["name"], m) for m in last["results"][0]["members"])["10.0.0.2:80"]
    assert (node["total_connections"], node["total_requests"], node["bits_in"]) == (10, 20, 20 * 100 * 8)
    result = rolling_deploy_analysis_verdict("web2", first, last, dict(min_traffic_share=0.8))
    assert result["verdict"] == "pass" and result["node"]["traffic_unit"] == "requests"
