# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The analysis gate on F5 pools and the traffic share check.

F5 member statistics count connections and requests, no errors and no
response times: an F5 pool is judged by the node's share of its traffic
(min_traffic_share) and by the device's availability view, and the
thresholds it cannot judge are said to be not offered."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gentle.lb.plugins.filter.rolling_deploy import (
    ANALYSIS_FAILED, rolling_deploy_analysis, rolling_deploy_analysis_calls, rolling_deploy_analysis_uncovered,
    rolling_deploy_analysis_verdict)


def member(name, connections, requests=0, pool="/Common/web", ratio=1, state="present", health="up",
           availability="available", admin="enabled", group=0, reason="Pool member is available"):
    """A gentle.lb.f5_pool_member_info entry, with the fields the gate reads."""
    address, port = name.rsplit(":", 1)
    return dict(container=pool, name=name, address=address, port=int(port), state=state, weight=ratio,
                health=health, availability=availability, admin_state=admin, status_reason=reason,
                priority_group=group, total_connections=connections, total_requests=requests)


BEFORE = [member("10.0.0.%d:80" % i, 500, 5000) for i in (1, 2, 3)]


def after(node=(100, 1000), **node_fields):
    return [member("10.0.0.1:80", 600, 6000), member("10.0.0.2:80", 500 + node[0], 5000 + node[1], **node_fields),
            member("10.0.0.3:80", 600, 6000)]


def analyse(after_reading, thresholds, before=None, node="10.0.0.2:80"):
    return rolling_deploy_analysis(after_reading, BEFORE if before is None else before, node, thresholds,
                                   balancer="f5")


def test_a_node_taking_its_share_passes_with_its_counters():
    result = analyse(after(), dict(min_traffic_share=0.5))
    assert result["verdict"] == "pass" and result["reasons"] == []
    node = result["node"]
    assert (node["requests"], node["connections"], node["traffic_unit"]) == (1000, 100, "requests")
    assert node["traffic_share"] == 1.0 and node["fair_share"] == 1000.0 and node["container_traffic"] == 3000
    assert result["others"] == dict(connections=200, requests=2000)


def test_a_node_taking_far_less_than_its_share_fails():
    result = analyse(after(node=(20, 200)), dict(min_traffic_share=0.5))
    assert result["verdict"] == "fail"
    assert result["reasons"] == ["/Common/web: took 200 of the 2200 new requests its members in rotation took, "
                                 "27% of its fair share by weight (733.3), below min_traffic_share 0.5"]


def test_connections_are_the_traffic_when_the_pool_counted_no_requests():
    before = [member("10.0.0.%d:80" % i, 500) for i in (1, 2, 3)]
    reading = [member("10.0.0.1:80", 600), member("10.0.0.2:80", 510), member("10.0.0.3:80", 600)]
    result = analyse(reading, dict(min_traffic_share=0.5), before)
    assert result["verdict"] == "fail" and result["node"]["traffic_unit"] == "connections"
    assert "took 10 of the 210 new connections" in result["reasons"][0]


def test_the_share_is_by_ratio_among_the_members_in_rotation_of_its_priority_group():
    reading = [member("10.0.0.1:80", 600, 6000, ratio=3), member("10.0.0.2:80", 600, 6000),
               member("10.0.0.3:80", 500, 5000, state="drained"), member("10.0.0.4:80", 500, 5000, group=5)]
    before = BEFORE + [member("10.0.0.4:80", 500, 5000, group=5)]
    result = analyse(reading, dict(min_traffic_share=0.9), before)
    # fair: 2000 requests * 1 / (1 + 3) = 500, it took 1000: twice its share.
    assert result["verdict"] == "pass" and result["node"]["traffic_share"] == 2.0


def test_a_node_the_device_marks_offline_fails():
    reading = after(health="down", availability="offline", reason="Pool member has been marked down by a monitor")
    result = analyse(reading, dict(min_traffic_share=0.1))
    assert result["verdict"] == "fail"
    assert result["reasons"] == ["/Common/web: the device marks it offline at the end of the window "
                                 "(Pool member has been marked down by a monitor)"]


def test_a_node_that_took_nothing_fails_although_below_min_requests_itself():
    result = analyse(after(node=(0, 0)), dict(min_traffic_share=0.5))
    assert result["verdict"] == "fail" and "took 0 of the 2000" in result["reasons"][0]


def test_too_little_traffic_in_the_pool_is_no_data():
    before = [member("10.0.0.%d:80" % i, 5, 5) for i in (1, 2, 3)]
    reading = [member("10.0.0.1:80", 10, 10), member("10.0.0.2:80", 5, 5), member("10.0.0.3:80", 10, 10)]
    result = analyse(reading, dict(min_traffic_share=0.5), before)
    assert result["verdict"] == "no_data" and "fewer than min_requests (20)" in result["reasons"][0]


def test_error_and_response_time_thresholds_are_not_offered_by_f5():
    result = analyse(after(node=(0, 0)), dict(max_error_rate=0.01, max_response_time_ms=200))
    assert result["verdict"] == "no_data"
    assert result["reasons"][:2] == [
        "/Common/web: max_error_rate: not offered by F5 (F5 member statistics count no errors)",
        "/Common/web: max_response_time_ms: not offered by F5 (F5 member statistics have no response time)"]
    assert "min_traffic_share" in result["reasons"][2]
    # Beside a check F5 offers, they are listed, and the share decides.
    judged = analyse(after(), dict(max_error_rate=0.01, min_traffic_share=0.5))
    assert judged["verdict"] == "pass" and len(judged["not_offered"]) == 1


def test_no_threshold_passes_once_the_node_had_traffic():
    assert analyse(after(), {})["verdict"] == "pass"
    assert analyse(after(node=(1, 1)), {})["verdict"] == "no_data"


def test_statistics_reset_during_the_window_is_no_data():
    result = analyse(after(node=(-400, -4000)), dict(min_traffic_share=0.5))
    assert result["verdict"] == "no_data" and "restarted" in result["reasons"][0]


def test_min_traffic_share_is_a_fraction():
    with pytest.raises(AnsibleFilterError, match="fraction of the node's fair share"):
        analyse(after(), dict(min_traffic_share=2))


# --- the same check on HAProxy -------------------------------------------------

def server(name, requests, weight=1, backup=False, state="present"):
    return dict(container="app", backend="app", name=name, state=state, health="up", weight=weight, backup=backup,
                requests=requests, responses={"2xx": requests, "5xx": 0}, connection_errors=0, response_errors=0,
                retries=0, redispatches=0, response_time_ms=5)


def test_haproxy_share_counts_the_servers_in_rotation_by_weight_not_backups():
    before = [server("web1", 0), server("web2", 0), server("web3", 0, backup=True)]
    reading = [server("web1", 190), server("web2", 10), server("web3", 0, backup=True)]
    result = rolling_deploy_analysis(reading, before, "web2", dict(min_traffic_share=0.5))
    assert result["verdict"] == "fail" and "took 10 of the 200 new requests" in result["reasons"][0]
    assert result["backends"]["app"]["node"]["traffic_share"] == 0.1
    assert rolling_deploy_analysis(reading, before, "web2", {})["verdict"] == "no_data"   # off: min_requests


# --- the role's readings of F5 devices -----------------------------------------

def hostvars(**bindings):
    return dict((host, dict(_rolling_deploy_me=dict(bindings=found, settings={}))) for host, found in bindings.items())


def f5_binding(address, **extra):
    return dict(dict(type="f5", pool="web", address=address, port=80, server="bigip1", user="u", password="p",
                     validate_certs=False, drain_mode="disabled"), **extra)


def register(calls, readings):
    return dict(results=[dict(item=call, members=members) for call, members in zip(calls, readings)])


def test_one_f5_reading_per_device_with_its_connection_and_pools():
    hv = hostvars(web1=[f5_binding("10.0.0.1")], web2=[f5_binding("10.0.0.2", pool=["web", "api"])],
                  web3=[f5_binding("10.0.0.3", server="bigip2", partition="DMZ")])
    calls = rolling_deploy_analysis_calls(["web1", "web2", "web3"], hv)
    assert len(calls) == 2 and [c["type"] for c in calls] == ["f5", "f5"]
    assert calls[0]["options"] == dict(server="bigip1", user="u", password="p", validate_certs=False,
                                       pool=["web", "api"])                  # no drain_mode, no member
    assert calls[0]["hosts"] == ["web1", "web2"] and calls[0]["label"] == "f5 localhost web, api"
    assert calls[0]["servers"]["web2"] == dict(names=[], addresses=["10.0.0.2:80"])
    assert calls[1]["options"]["partition"] == "DMZ"
    assert rolling_deploy_analysis_uncovered(["web1"], hv) == []
    assert rolling_deploy_analysis_uncovered(["web1"], hv, dict(min_traffic_share=0.5)) == []
    # The role says once which thresholds cannot judge its f5 bindings.
    said = rolling_deploy_analysis_uncovered(["web1"], hv, dict(max_error_rate=0.02, max_response_time_ms=300))
    assert said == ["F5 member statistics count no errors and no response times: max_error_rate, "
                    "max_response_time_ms do not judge f5 bindings (set min_traffic_share to judge them by "
                    "their share of the traffic)"]


def test_an_f5_binding_by_node_name_finds_its_member():
    hv = hostvars(web2=[dict(type="f5", pool="web", name="10.0.0.2", port=80)])
    calls = rolling_deploy_analysis_calls(["web2"], hv)
    assert calls[0]["servers"]["web2"]["addresses"] == ["10.0.0.2:80"]
    assert "every pool" not in calls[0]["label"]


def test_the_f5_verdict_from_the_registers():
    hv = hostvars(web2=[f5_binding("10.0.0.2")], web1=[f5_binding("10.0.0.1")])
    calls = rolling_deploy_analysis_calls(["web1", "web2"], hv)
    first, last = register(calls, [BEFORE]), register(calls, [after(node=(10, 100))])
    limits = dict(min_traffic_share=0.5, max_error_rate=0.01)
    bad = rolling_deploy_analysis_verdict("web2", first, last, limits)
    assert bad["verdict"] == "fail" and bad["error_type"] == ANALYSIS_FAILED
    assert "below min_traffic_share 0.5" in bad["msg"] and bad["node"]["requests"] == 100
    good = rolling_deploy_analysis_verdict("web1", first, last, limits)
    assert good["verdict"] == "pass"
    assert good["msg"] == ("analysis gate: passed (max_error_rate: not offered by F5 (F5 member statistics "
                           "count no errors))")
    assert good["not_offered"] == ["max_error_rate: not offered by F5 (F5 member statistics count no errors)"]


def test_an_f5_address_without_route_domain_finds_the_member_in_one():
    hv = hostvars(web2=[f5_binding("10.0.0.2")])
    calls = rolling_deploy_analysis_calls(["web2"], hv)

    def in_rd2(reading):
        return [dict(m, name=m["name"].replace(":", "%2:"), address=m["address"] + "%2") for m in reading]
    result = rolling_deploy_analysis_verdict("web2", register(calls, [in_rd2(BEFORE)]),
                                             register(calls, [in_rd2(after(node=(10, 100)))]),
                                             dict(min_traffic_share=0.5))
    assert result["verdict"] == "fail" and "/Common/web: took 100 of" in result["reasons"][0]
