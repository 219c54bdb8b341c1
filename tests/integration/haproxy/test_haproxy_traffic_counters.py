# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The traffic counters haproxy_member_info and haproxy_member return per
server (from ``show stat``), after real traffic: what an analysis gate
compares between the node just restored and the rest of its backend.

The session lab's counters are cumulative over the whole session, so every
test compares two readings, before and after the traffic it sends, as the
gate does.  The app's errors are deterministic (every Nth request is a 500),
so the expected counts are exact.
"""

from __future__ import annotations

import pytest

from helpers import run_module
from conftest import Lab

COUNTERS = ("total_sessions", "balanced_sessions", "requests", "connection_errors", "response_errors",
            "retries", "redispatches")


def info(conn, **args):
    """haproxy_member_info's view through one transport: {(backend, server): entry}."""
    result = run_module("haproxy_member_info", dict(conn, **args))
    assert not result.failed, result
    return dict(((m["container"], m["name"]), m) for m in result["members"])


def delta(before, after, key):
    return after[key] - before[key]


def responses_delta(before, after):
    return dict((name, after["responses"][name] - before["responses"][name]) for name in before["responses"])


@pytest.mark.parametrize("transport", ["unix", "stats"])
def test_5xx_on_every_10th_request_is_counted_on_that_server_only(lab, transport):
    conn = lab.conn(transport)
    before = info(conn, backend=["app"])
    lab.app("web2").error_every = 10
    statuses = [lab.request("/", server="web2")[0] for _number in range(100)]
    statuses += [lab.request("/", server="web1")[0] for _number in range(50)]
    assert statuses.count(500) == 10 and statuses.count(200) == 140
    after = info(conn, backend=["app"])

    web2 = (before[("app", "web2")], after[("app", "web2")])
    assert responses_delta(*web2) == {"1xx": 0, "2xx": 90, "3xx": 0, "4xx": 0, "5xx": 10, "other": 0}
    # Each request came on a connection of its own and was sent to web2 by use-server, not by the algorithm.
    assert delta(*web2, "requests") == 100 and delta(*web2, "total_sessions") == 100
    assert delta(*web2, "balanced_sessions") == 0
    web1 = (before[("app", "web1")], after[("app", "web1")])
    assert responses_delta(*web1) == {"1xx": 0, "2xx": 50, "3xx": 0, "4xx": 0, "5xx": 0, "other": 0}
    assert delta(*web1, "requests") == 50
    # A 500 from the server is a response, not an error of the connection or the response.
    for pair in (web2, web1):
        for key in ("connection_errors", "response_errors", "retries", "redispatches"):
            assert delta(*pair, key) == 0, (key, pair)
    # Nobody sent anything to web3.
    web3 = (before[("app", "web3")], after[("app", "web3")])
    assert all(delta(*web3, key) == 0 for key in COUNTERS) and set(responses_delta(*web3).values()) == {0}


def test_haproxy_member_returns_the_counters_too(lab):
    before = lab.info(backend=["app"], server=["web3"])[("app", "web3")]
    for _number in range(5):
        lab.request("/", server="web3")
    result = run_module("haproxy_member", dict(socket=lab.admin_socket, backend="app", server="web3",
                                               state="present"))
    assert not result.failed and result["changed"] is False, result
    (entry,) = result["members"]
    assert delta(before, entry, "requests") == 5 and entry["responses"]["2xx"] - before["responses"]["2xx"] == 5


def test_connection_errors_and_response_time(session_lab):
    """In a lab of its own, so the response time (an average over the last
    1024 requests) is that of this test's requests only."""
    lab = Lab(session_lab.version).start()
    try:
        for _number in range(20):
            assert lab.request("/slow?seconds=0.1", server="web3")[0] == 200
        web3 = lab.info(backend=["app"], server=["web3"])[("app", "web3")]
        assert 50 <= web3["response_time_ms"] <= 2000, web3
        # web1's process stops: the next request sent to it is refused at connect, HAProxy retries it
        # (3 times by default) and answers 503; by then its check has seen it DOWN (fall 2), so the
        # next ones go elsewhere (use-server skips a DOWN server).
        before = lab.info(backend=["app"], server=["web1"])[("app", "web1")]
        lab.app("web1").stop()
        statuses = [lab.request("/", server="web1")[0] for _number in range(3)]
        after = lab.info(backend=["app"], server=["web1"])[("app", "web1")]
        changes = dict((key, delta(before, after, key)) for key in COUNTERS)
        assert statuses[0] == 503, (statuses, changes)
        assert changes["connection_errors"] >= 1 and changes["retries"] >= 1, (statuses, changes)
        # It never answered, so no response and no request reached it.
        assert changes["requests"] == 0 and set(responses_delta(before, after).values()) == {0}, changes
    finally:
        lab.stop()
