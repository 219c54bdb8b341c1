# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/f5.py: names, parsers, the monitor-derived
state mapping, and the REST client's login/re-login/retry/error logic against a
fake session (no network, no sleeping: the client's sleep is injected)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
import requests

from ansible_collections.gentle.lb.plugins.module_utils import f5
from ansible_collections.gentle.lb.plugins.module_utils.member import (
    AuthRefusedError, CommandError, InvalidInputError, Member, NotFoundError, PermissionDeniedError,
    Request, UnreachableError)


# --------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------

@pytest.mark.parametrize("pool, partition, expected", [
    ("web", "Common", "/Common/web"),
    ("web", "DMZ", "/DMZ/web"),
    ("/Common/web", "DMZ", "/Common/web"),
    ("/Common/app/web", "Common", "/Common/app/web"),
    ("~Common~app~web", "Common", "/Common/app/web"),
    ("web_pool-2.v1", "Common", "/Common/web_pool-2.v1"),
])
def test_pool_path(pool, partition, expected):
    assert f5.pool_path(pool, partition) == expected


@pytest.mark.parametrize("pool, partition", [
    ("web pool", "Common"), ("web;rm", "Common"), ("", "Common"), ("/web", "Common"),
    ("web", "Com mon"), ("web", "../x"), ("/Common/a b/web", "Common"), ("web?x=1", "Common"),
    ("web#", "Common"),
])
def test_pool_path_refuses_hostile_names(pool, partition):
    with pytest.raises(InvalidInputError):
        f5.pool_path(pool, partition)


@pytest.mark.parametrize("full_path, segment", [
    ("/Common/web", "~Common~web"),
    ("/Common/app/web", "~Common~app~web"),
    ("/Common/10.0.0.1:80", "~Common~10.0.0.1:80"),
    ("/Common/10.0.0.3%2:80", "~Common~10.0.0.3%252:80"),          # route domain: % is %25 in URLs
    ("/DMZ/10.10.0.2%10:80", "~DMZ~10.10.0.2%2510:80"),
    ("/Common/2001:db8::10.443", "~Common~2001:db8::10.443"),       # IPv6: colons stay
    ("/Common/fe80::1%3.8080", "~Common~fe80::1%253.8080"),
])
def test_url_segment(full_path, segment):
    assert f5.url_segment(full_path) == segment


def test_member_url_encodes_pool_and_member():
    assert (f5.member_url("/Common/web", "/Common/10.0.0.3%2:80")
            == "/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.3%252:80")


@pytest.mark.parametrize("name, node, port", [
    ("10.0.0.1:80", "10.0.0.1", 80),
    ("10.0.0.3%2:80", "10.0.0.3%2", 80),
    ("web1:8080", "web1", 8080),
    ("2001:db8::10.443", "2001:db8::10", 443),
    ("2001:db8::10%2.443", "2001:db8::10%2", 443),
    ("/Common/web1:80", "/Common/web1", 80),
    ("/Common/2001:db8::10.443", "/Common/2001:db8::10", 443),
    ("web.example.com:443", "web.example.com", 443),
])
def test_split_member_name(name, node, port):
    assert f5.split_member_name(name) == (node, port)


@pytest.mark.parametrize("name", ["web1", "10.0.0.1", "10.0.0.1:", "2001:db8::10", "web1:http", "10.0.0.1:70000"])
def test_split_member_name_needs_a_port(name):
    with pytest.raises(ValueError):
        f5.split_member_name(name)


@pytest.mark.parametrize("node, port, name", [
    ("10.0.0.1", 80, "10.0.0.1:80"),
    ("web1", 80, "web1:80"),
    ("10.0.0.3%2", 80, "10.0.0.3%2:80"),
    ("2001:db8::10", 443, "2001:db8::10.443"),
    ("2001:db8::10%2", 443, "2001:db8::10%2.443"),
])
def test_join_member_name(node, port, name):
    assert f5.join_member_name(node, port) == name


@pytest.mark.parametrize("wanted, actual, same", [
    ("10.0.0.1", "10.0.0.1", True),
    ("10.0.0.1", "10.0.0.10", False),
    ("10.0.0.3", "10.0.0.3%2", True),          # no route domain given: any
    ("10.0.0.3%2", "10.0.0.3%2", True),
    ("10.0.0.3%2", "10.0.0.3%3", False),
    ("10.0.0.3%2", "10.0.0.3", False),
    ("10.0.0.3%0", "10.0.0.3", True),          # route domain 0 is the default
    ("2001:db8::10", "2001:0db8:0:0::10", True),
    ("2001:DB8::10", "2001:db8::10%4", True),
    ("2001:db8::10", "2001:db8::11", False),
    ("10.0.0.1", None, False),
])
def test_same_address(wanted, actual, same):
    assert f5.same_address(wanted, actual) is same


@pytest.mark.parametrize("name, address, port, expected", [
    ("10.0.0.1:80", None, None, ("10.0.0.1:80", None, None, 80)),
    ("web1", None, 80, ("web1:80", None, None, 80)),
    ("web1", None, None, (None, "web1", None, None)),
    ("10.0.0.1", None, None, (None, "10.0.0.1", None, None)),
    ("2001:db8::10", None, None, (None, "2001:db8::10", None, None)),
    ("2001:db8::10.443", None, None, ("2001:db8::10.443", None, None, 443)),
    ("2001:db8::10", None, 443, ("2001:db8::10.443", None, None, 443)),
    ("10.0.0.3%2", None, 80, ("10.0.0.3%2:80", None, None, 80)),
    (None, "10.0.0.1", 80, (None, None, "10.0.0.1", 80)),
    (None, "10.0.0.3%2", None, (None, None, "10.0.0.3%2", None)),
    ("web1:80", None, 80, ("web1:80", None, None, 80)),
])
def test_parse_member_spec(name, address, port, expected):
    assert f5.parse_member_spec(name, address, port) == expected


@pytest.mark.parametrize("name, address, port", [
    (None, None, None),
    (None, "web1.example.com", 80),       # address must be an IP address
    (None, "10.0.0.1", 70000),
    ("web1:80", None, 81),                # the name says another port
    ("/Common/web1", None, 80),           # partition goes in the partition option
    ("web 1", None, 80),
    ("web1;x", None, 80),
])
def test_parse_member_spec_refuses(name, address, port):
    with pytest.raises(InvalidInputError):
        f5.parse_member_spec(name, address, port)


def _member(name, address=None, port=None):
    node, port_ = f5.split_member_name(name)
    return Member("/Common/web", name, address or node, port if port is not None else port_)


@pytest.mark.parametrize("kwargs, name, address, match", [
    (dict(name="10.0.0.1:80"), "10.0.0.1:80", None, True),
    (dict(name="10.0.0.1:80"), "10.0.0.1:81", None, False),
    (dict(name="web1"), "web1:80", "10.0.0.9", True),           # node name: every port
    (dict(name="web1"), "web10:80", "10.0.0.10", False),
    (dict(address="10.0.0.3"), "10.0.0.3%2:80", "10.0.0.3%2", True),
    (dict(address="10.0.0.3%2", port=80), "10.0.0.3%2:80", "10.0.0.3%2", True),
    (dict(address="10.0.0.3%2", port=81), "10.0.0.3%2:80", "10.0.0.3%2", False),
    (dict(address="2001:db8:0::10", port=443), "2001:db8::10.443", "2001:db8::10", True),
    (dict(name="web1", address="10.0.0.9"), "web1:80", "10.0.0.8", False),
])
def test_selector_matches(kwargs, name, address, match):
    selector = f5.MemberSelector.from_params(**kwargs)
    assert selector.matches(_member(name, address)) is match


@pytest.mark.parametrize("kwargs, text", [
    (dict(name="10.0.0.1:80"), "10.0.0.1:80"),
    (dict(name="web1"), "web1"),
    (dict(address="2001:db8::10", port=443), "2001:db8::10.443"),
    (dict(address="10.0.0.3%2"), "10.0.0.3%2"),
])
def test_selector_describe(kwargs, text):
    assert f5.MemberSelector.from_params(**kwargs).describe() == text


def test_info_filter_is_optional():
    assert f5.MemberSelector.filter() is None
    assert f5.MemberSelector.filter(port=80).matches(_member("10.0.0.1:80"))
    assert not f5.MemberSelector.filter(port=80).matches(_member("10.0.0.1:81"))


# --------------------------------------------------------------------------
# The monitor-derived state mapping (reference §4): never compare literally
# --------------------------------------------------------------------------

@pytest.mark.parametrize("session, state, admin", [
    ("user-enabled", "user-up", "enabled"),         # as written
    ("user-enabled", "unchecked", "enabled"),       # user-up read back without a monitor
    ("monitor-enabled", "up", "enabled"),           # ... with a monitor
    ("monitor-enabled", "down", "enabled"),         # enabled, monitor says down: still admin-enabled
    ("monitor-enabled", "checking", "enabled"),
    ("user-enabled", "fqdn-up", "enabled"),
    ("user-enabled", "fqdn-up-no-addr", "enabled"),
    ("user-disabled", "user-up", "disabled"),
    ("user-disabled", "unchecked", "disabled"),
    ("user-disabled", "up", "disabled"),
    ("user-disabled", "down", "disabled"),          # disabled + monitor (f5-common-python #985)
    ("user-disabled", "user-down", "forced_offline"),
    ("user-enabled", "user-down", "forced_offline"),  # forced down wins: takes no new connections
    ("monitor-enabled", "user-down", "forced_offline"),
])
def test_admin_state(session, state, admin):
    assert f5.admin_state(session, state) == admin


@pytest.mark.parametrize("admin, mode, state", [
    ("enabled", "disabled", "present"),
    ("enabled", "forced_offline", "present"),
    ("disabled", "disabled", "drained"),
    ("forced_offline", "disabled", "drained"),      # forced offline already takes less: left alone
    ("disabled", "forced_offline", "disabled"),     # must still change to forced offline
    ("forced_offline", "forced_offline", "drained"),
])
def test_model_state(admin, mode, state):
    assert f5.model_state(admin, mode) == state


@pytest.mark.parametrize("availability, read_state, health", [
    ("available", "up", "up"),
    ("unknown", "unchecked", "unknown"),
    ("offline", "down", "down"),
    ("offline", "user-down", "down"),
    ("unavailable", "up", "down"),
    (None, "up", "up"),
    (None, "down", "down"),
    (None, "unchecked", "unknown"),
    (None, "checking", "unknown"),
])
def test_health(availability, read_state, health):
    assert f5.health_of(availability, read_state) == health


# Trimmed public captures (reference §4/§5): 12.x+ nested stats.
STATS_NESTED = {
    "kind": "tm:ltm:pool:members:memberscollectionstats",
    "entries": {
        "https://localhost/mgmt/tm/ltm/pool/~Common~CreatePoolNew/members/~Common~Pool123:80/stats": {
            "nestedStats": {
                "kind": "tm:ltm:pool:members:membersstats",
                "entries": {"addr": {"description": "0.0.0.227"}, "port": {"value": 80},
                            "curSessions": {"value": 0}, "serverside.curConns": {"value": 2},
                            "monitorStatus": {"description": "unchecked"},
                            "sessionStatus": {"description": "enabled"},
                            "status.availabilityState": {"description": "unknown"}}}},
        "https://localhost/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.10.0.2%2510:80/stats": {
            "nestedStats": {"entries": {"serverside.curConns": {"value": 7}, "curSessions": {"value": 9},
                                        "status.availabilityState": {"description": "available"}}}},
        "https://localhost/mgmt/tm/ltm/pool/~Common~web/members/~Common~2001:db8::10.443/stats": {
            "nestedStats": {"entries": {"serverside.curConns": {"value": 1}}}},
    },
}

# 11.6: a single member's stats were flat.
STATS_FLAT = {
    "kind": "tm:ltm:pool:members:membersstats",
    "entries": {"https://localhost/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.1:80/stats": {
        "serverside.curConns": {"value": 3}, "status.availabilityState": {"description": "offline"}}},
}


def test_parse_stats_nested_keys_route_domain_and_ipv6():
    stats = f5.parse_stats(STATS_NESTED)
    assert set(stats) == {"/Common/Pool123:80", "/Common/10.10.0.2%10:80", "/Common/2001:db8::10.443"}
    assert stats["/Common/Pool123:80"]["serverside.curConns"] == 2
    assert stats["/Common/Pool123:80"]["status.availabilityState"] == "unknown"
    assert stats["/Common/10.10.0.2%10:80"]["curSessions"] == 9
    assert stats["/Common/2001:db8::10.443"]["serverside.curConns"] == 1


def test_parse_stats_flat_and_empty():
    assert f5.parse_stats(STATS_FLAT)["/Common/10.0.0.1:80"]["serverside.curConns"] == 3
    assert f5.parse_stats({"kind": "tm:ltm:pool:members:memberscollectionstats"}) == {}


def test_parse_stats_falls_back_to_node_name_and_port():
    body = {"entries": {"weird-key": {"nestedStats": {"entries": {
        "nodeName": {"description": "/Common/10.0.0.5"}, "port": {"value": 8080},
        "serverside.curConns": {"value": 4}}}}}}
    assert f5.parse_stats(body)["/Common/10.0.0.5:8080"]["serverside.curConns"] == 4


MEMBER_ITEM = {"kind": "tm:ltm:pool:members:membersstate", "name": "1.1.1.1:80", "partition": "Common",
               "fullPath": "/Common/1.1.1.1:80", "address": "1.1.1.1", "connectionLimit": 0,
               "monitor": "default", "priorityGroup": 0, "ratio": 3, "session": "user-disabled",
               "state": "up"}


def test_member_record_maps_reads_and_counts_the_larger_of_conns_and_sessions():
    member = f5.member_record("/Common/test_pool", MEMBER_ITEM, {
        "serverside.curConns": 2, "curSessions": 5, "status.availabilityState": "available",
        "status.enabledState": "disabled"})
    assert (member.container, member.name, member.address, member.port) == ("/Common/test_pool", "1.1.1.1:80",
                                                                            "1.1.1.1", 80)
    assert member.state == "drained" and member.weight == 3
    assert member.sessions == 5 and member.health == "up"
    assert member.details["admin_state"] == "disabled"
    assert member.details["connections"] == 2 and member.details["current_sessions"] == 5
    assert member.details["node"] == "/Common/1.1.1.1"
    assert not member.in_rotation
    # Without the cumulative counters in the stats they are unknown, not 0.
    assert member.details["total_connections"] is None and member.details["total_requests"] is None


def test_member_record_carries_the_cumulative_counters():
    member = f5.member_record("/Common/test_pool", MEMBER_ITEM, {
        "serverside.curConns": 2, "serverside.totConns": 1520, "totRequests": 20311, "serverside.maxConns": 12,
        "serverside.bitsIn": 81920, "serverside.bitsOut": 20480})
    assert dict((k, member.details[k]) for k in ("total_connections", "total_requests", "max_connections",
                                                 "bits_in", "bits_out")) == dict(
        total_connections=1520, total_requests=20311, max_connections=12, bits_in=81920, bits_out=20480)


def test_member_record_route_domain_and_ipv6():
    member = f5.member_record("/DMZ/web", {"name": "10.0.0.3%2:80", "partition": "DMZ", "address": "10.0.0.3%2",
                                           "session": "monitor-enabled", "state": "up", "ratio": 1})
    assert (member.address, member.port, member.state) == ("10.0.0.3%2", 80, "present")
    assert member.details["full_path"] == "/DMZ/10.0.0.3%2:80"
    member = f5.member_record("/Common/web6", {"name": "2001:db8::10.443", "address": "2001:db8::10",
                                               "session": "user-enabled", "state": "unchecked"})
    assert (member.address, member.port, member.health) == ("2001:db8::10", 443, "unknown")


# --------------------------------------------------------------------------
# The REST client against a fake session
# --------------------------------------------------------------------------

class FakeResponse(object):
    def __init__(self, status, body=None, text=None):
        self.status_code = status
        self.text = json.dumps(body, separators=(",", ":")) if body is not None else (text or "")
        self.content = self.text.encode()
        self.reason = "reason"

    def json(self):
        return json.loads(self.text)


def login_ok(token="TOKEN1"):
    return FakeResponse(200, {"username": "admin", "token": {"token": token, "timeout": 1200}})


EXPIRED = FakeResponse(401, {"code": 401, "message": "X-F5-Auth-Token has expired.", "kind": ":resterrorresponse"})


def reset_error():
    return requests.exceptions.ConnectionError(
        "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))")


def refused_error():
    return requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: / (Caused by "
        "NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused'))")


class FakeSession(object):
    """Answers from a script, in order; records every call with its keyword arguments."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls = []
        self.auth = None
        self.closed = False

    def request(self, method, url, **kwargs):
        self.calls.append((method, url.split("://", 1)[1].split("/", 1)[1], kwargs))
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self):
        self.closed = True

    def paths(self):
        return ["%s /%s" % (m, p) for m, p, dummy in self.calls]


def client(session, validate_certs=True, **kwargs):
    sleeps = []
    rest = f5.RestClient("bigip.example.com", 443, "admin", "secret", validate_certs=validate_certs,
                         session=session, sleep=sleeps.append, **kwargs)
    return rest, sleeps


def test_token_login_then_request_then_token_deleted():
    session = FakeSession(login_ok(), FakeResponse(200, {"items": []}), FakeResponse(200, {}))
    rest, dummy = client(session)
    with rest:
        assert rest.get("/mgmt/tm/ltm/pool") == {"items": []}
    assert session.paths() == ["POST /mgmt/shared/authn/login", "GET /mgmt/tm/ltm/pool",
                               "DELETE /mgmt/shared/authz/tokens/TOKEN1"]
    login_body = json.loads(session.calls[0][2]["data"])
    assert login_body == {"username": "admin", "password": "secret", "loginProviderName": "tmos"}
    assert session.calls[1][2]["headers"]["X-F5-Auth-Token"] == "TOKEN1"
    assert session.closed


@pytest.mark.parametrize("validate_certs", [True, False])
def test_verify_is_passed_on_every_request(validate_certs):
    # requests #3829: a session-wide verify=False loses against REQUESTS_CA_BUNDLE,
    # so each request must carry verify= itself (the token DELETE included).
    session = FakeSession(login_ok(), FakeResponse(200, {}), FakeResponse(200, {}), FakeResponse(200, {}))
    rest, dummy = client(session, validate_certs=validate_certs)
    rest.get("/a")
    rest.request("PATCH", "/b", body={"x": 1})
    rest.close()
    assert [c[2]["verify"] for c in session.calls] == [validate_certs] * 4


def test_expired_token_relogin_once_then_success():
    session = FakeSession(login_ok("T1"), EXPIRED, login_ok("T2"), FakeResponse(200, {"ok": 1}),
                          FakeResponse(200, {}))
    rest, dummy = client(session)
    assert rest.get("/x") == {"ok": 1}
    rest.close()
    assert session.paths() == ["POST /mgmt/shared/authn/login", "GET /x", "POST /mgmt/shared/authn/login",
                               "GET /x", "DELETE /mgmt/shared/authz/tokens/T2"]
    assert session.calls[3][2]["headers"]["X-F5-Auth-Token"] == "T2"


def test_expired_token_twice_fails_after_one_relogin():
    session = FakeSession(login_ok("T1"), EXPIRED, login_ok("T2"), EXPIRED, FakeResponse(200, {}))
    rest, dummy = client(session)
    with pytest.raises(AuthRefusedError) as error:
        rest.request("PATCH", "/x", body={})
    assert "again after logging in once more" in error.value.msg
    rest.close()
    assert session.paths().count("POST /mgmt/shared/authn/login") == 2
    assert session.paths()[-1] == "DELETE /mgmt/shared/authz/tokens/T2"


def test_bad_credentials_at_login():
    session = FakeSession(FakeResponse(401, {"code": 401, "message": "Authentication failed.",
                                             "kind": ":resterrorresponse"}))
    rest, dummy = client(session)
    with pytest.raises(AuthRefusedError) as error:
        rest.get("/x")
    assert "user admin was refused at login (Authentication failed.)" in error.value.msg
    rest.close()
    assert session.paths() == ["POST /mgmt/shared/authn/login"]    # no token: nothing to delete


@pytest.mark.parametrize("answer", [
    FakeResponse(404, {"code": 404, "message": "Public URI path not registered: /shared/authn/login"}),
    FakeResponse(405, {"code": 405, "message": "Method not allowed"}),
    FakeResponse(200, {"username": "admin"}),          # no token in the answer
])
def test_basic_auth_fallback_when_token_login_is_unavailable(answer):
    session = FakeSession(answer, FakeResponse(200, {"ok": 1}))
    rest, dummy = client(session)
    assert rest.get("/x") == {"ok": 1}
    assert rest.auth_mode == "basic" and session.auth == ("admin", "secret")
    assert "X-F5-Auth-Token" not in session.calls[1][2]["headers"]
    rest.close()
    assert session.paths() == ["POST /mgmt/shared/authn/login", "GET /x"]


def test_basic_auth_refused_names_the_fallback():
    session = FakeSession(FakeResponse(404, {"code": 404, "message": "Public URI path not registered"}),
                          FakeResponse(401, text="<html>401 Unauthorized</html>"))
    rest, dummy = client(session)
    with pytest.raises(AuthRefusedError) as error:
        rest.get("/x")
    assert "basic authentication was used" in error.value.msg
    assert len(session.calls) == 2          # no re-login loop in basic mode


def test_reads_are_retried_with_backoff_on_5xx_and_resets():
    mcpd = FakeResponse(500, {"code": 500, "message": "The connection to mcpd has been lost, try again."})
    session = FakeSession(login_ok(), mcpd, reset_error(),
                          FakeResponse(503, text="Configuration Utility restarting..."),
                          FakeResponse(200, {"ok": 1}))
    rest, sleeps = client(session)
    assert rest.get("/x") == {"ok": 1}
    assert sleeps == [0.25, 0.5, 1.0]
    assert session.paths()[1:] == ["GET /x"] * 4


def test_read_retries_give_up():
    mcpd = FakeResponse(500, {"code": 500, "message": "The connection to mcpd has been lost, try again."})
    session = FakeSession(login_ok(), mcpd, mcpd, mcpd, mcpd)
    rest, sleeps = client(session)
    with pytest.raises(CommandError) as error:
        rest.get("/x", what="pool /Common/web")
    assert error.value.msg.startswith("pool /Common/web: F5 bigip.example.com:443 answered 500")
    assert "mcpd has been lost" in error.value.msg
    assert len(sleeps) == 3


def test_backoff_is_capped():
    session = FakeSession(login_ok(), *([reset_error()] * 6 + [FakeResponse(200, {})]))
    rest, sleeps = client(session, retries=6)
    rest.get("/x")
    assert sleeps == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize("method", ["PATCH", "POST", "DELETE"])
def test_writes_are_never_retried(method):
    mcpd = FakeResponse(500, {"code": 500, "message": "The connection to mcpd has been lost, try again."})
    session = FakeSession(login_ok(), mcpd)
    rest, sleeps = client(session)
    with pytest.raises(CommandError):
        rest.request(method, "/x", body={})
    assert sleeps == [] and len(session.calls) == 2


def test_dropped_write_says_it_may_have_been_applied():
    session = FakeSession(login_ok(), reset_error())
    rest, sleeps = client(session)
    with pytest.raises(UnreachableError) as error:
        rest.request("PATCH", "/x", body={})
    assert "may or may not have been applied" in error.value.msg and sleeps == []


def test_refused_connection_is_unreachable_at_once():
    session = FakeSession(refused_error())
    rest, sleeps = client(session)
    with pytest.raises(UnreachableError) as error:
        rest.get("/x")
    assert error.value.msg == ("F5 bigip.example.com:443: cannot connect (Connection refused); check server and "
                               "server_port, and that this host can reach the management address")
    assert sleeps == []


def test_tls_failure_says_how_to_pass_validate_certs_or_a_ca():
    session = FakeSession(requests.exceptions.SSLError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1000)"))
    rest, sleeps = client(session)
    with pytest.raises(UnreachableError) as error:
        rest.get("/x")
    assert "validate_certs: false" in error.value.msg and "REQUESTS_CA_BUNDLE" in error.value.msg
    assert "self-signed certificate" in error.value.msg and sleeps == []


def test_400_body_is_shown_verbatim():
    body = ('{"code":400,"message":"01070110:3: Node address \'/Common/10.0.0.7\' is referenced by a member of '
            'pool \'/Common/web\'.","errorStack":[],"apiError":3}')
    session = FakeSession(login_ok(), FakeResponse(400, text=body))
    rest, dummy = client(session)
    with pytest.raises(CommandError) as error:
        rest.request("DELETE", "/mgmt/tm/ltm/node/~Common~10.0.0.7", what="node /Common/10.0.0.7")
    assert error.value.msg.endswith(body)


def test_409_quotes_the_device():
    message = ("01020066:3: The requested Pool Member (/Common/web /Common/10.0.0.1 80) already exists in "
               "partition Common.")
    session = FakeSession(login_ok(), FakeResponse(409, {"code": 409, "message": message, "errorStack": []}))
    rest, dummy = client(session)
    with pytest.raises(CommandError) as error:
        rest.request("POST", "/x", body={}, what="member 10.0.0.1:80 in pool /Common/web")
    assert message in error.value.msg and "409" in error.value.msg


def test_404_and_403():
    message = "01020036:3: The requested Pool (/Common/nope) was not found."
    session = FakeSession(login_ok(), FakeResponse(404, {"code": 404, "message": message}),
                          FakeResponse(403, {"code": 403, "message": "Forbidden"}))
    rest, dummy = client(session)
    with pytest.raises(NotFoundError) as error:
        rest.get("/x", what="pool /Common/nope")
    assert error.value.msg.startswith("pool /Common/nope: not found on F5 bigip.example.com:443 (%s)" % message)
    with pytest.raises(PermissionDeniedError):
        rest.get("/y")


def test_token_is_deleted_even_when_the_work_failed():
    session = FakeSession(login_ok("T9"), FakeResponse(404, {"code": 404, "message": "nope"}),
                          requests.exceptions.ConnectionError("gone"))
    rest, dummy = client(session)
    with pytest.raises(NotFoundError):
        with rest:
            rest.get("/x")
    assert session.paths()[-1] == "DELETE /mgmt/shared/authz/tokens/T9"    # a failing DELETE is swallowed
    assert session.closed


def test_collection_follows_next_link():
    page1 = FakeResponse(200, {"items": [{"name": "a"}], "nextLink":
                               "https://localhost/mgmt/tm/ltm/pool?$top=1&$skip=1&ver=15.1.10"})
    page2 = FakeResponse(200, {"items": [{"name": "b"}]})
    session = FakeSession(login_ok(), page1, page2)
    rest, dummy = client(session)
    assert [i["name"] for i in rest.collection("/mgmt/tm/ltm/pool")] == ["a", "b"]
    assert session.calls[2][2]["params"] == {"$top": "1", "$skip": "1"}


def test_ipv6_server_is_bracketed():
    rest, dummy = client(FakeSession())
    assert f5.RestClient("2001:db8::1", 8443, "a", "b", session=FakeSession()).base == "https://[2001:db8::1]:8443"
    assert rest.base == "https://bigip.example.com:443"


# --------------------------------------------------------------------------
# The backend: requests per read, writes, forced offline
# --------------------------------------------------------------------------

def members_answer(*items):
    return FakeResponse(200, {"kind": "tm:ltm:pool:members:memberscollectionstate", "items": list(items)})


ENABLED_STATS = {"sessionStatus": "enabled", "status.enabledState": "enabled",
                 "status.statusReason": "Pool member is available", "status.availabilityState": "available"}
DISABLED_STATS = {"sessionStatus": "user-disabled", "status.enabledState": "disabled",
                  "status.statusReason": "Pool member is available, user disabled",
                  "status.availabilityState": "available"}


def stats_answer(pool, *rows):
    """rows: (member name, connections) or (member name, connections, status fields)."""
    entries = {}
    for row in rows:
        name, conns = row[0], row[1]
        status = row[2] if len(row) > 2 else ENABLED_STATS
        key = "https://localhost/mgmt/tm/ltm/pool/%s/members/%s/stats" % (
            f5.url_segment(pool), f5.url_segment("/Common/" + name))
        values = {"serverside.curConns": {"value": conns}, "curSessions": {"value": 0}}
        values.update(dict((k, {"description": v}) for k, v in status.items()))
        entries[key] = {"nestedStats": {"entries": values}}
    return FakeResponse(200, {"entries": entries})


STANDALONE = FakeResponse(200, {"items": [{"name": "device_trust_group", "type": "sync-only",
                                           "autoSync": "enabled"}]})


def item(name, session="monitor-enabled", state="up", address=None, ratio=1):
    return {"name": name, "partition": "Common", "fullPath": "/Common/" + name,
            "address": address or f5.split_member_name(name)[0], "session": session, "state": state,
            "ratio": ratio}


def backend_for(session, **kwargs):
    rest, dummy = client(session)
    return f5.F5Backend(f5.RestTransport(rest), **kwargs)


def test_read_is_two_requests_per_pool_and_poll_one_small_answer():
    session = FakeSession(login_ok(), members_answer(item("10.0.0.1:80"), item("10.0.0.2:80")),
                          stats_answer("/Common/web", ("10.0.0.1:80", 3), ("10.0.0.2:80", 0)), STANDALONE,
                          stats_answer("/Common/web", ("10.0.0.1:80", 1)))
    backend = backend_for(session, selector=f5.MemberSelector.from_params(name="10.0.0.1:80"))
    members = backend.read(["/Common/web"])
    assert [(m.name, m.sessions, m.state) for m in members] == [("10.0.0.1:80", 3, "present"),
                                                                ("10.0.0.2:80", 0, "present")]
    assert backend.identity() == {"where": "F5 bigip.example.com:443", "device": None, "state": "active"}
    # While waiting, only the target's own stats: one small answer however big the pool.
    assert [(m.name, m.sessions) for m in backend.poll(["/Common/web"])] == [("10.0.0.1:80", 1)]
    assert session.paths() == ["POST /mgmt/shared/authn/login",
                               "GET /mgmt/tm/ltm/pool/~Common~web/members",
                               "GET /mgmt/tm/ltm/pool/~Common~web/members/stats",
                               "GET /mgmt/tm/cm/device-group",
                               "GET /mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.1:80/stats"]


def test_in_a_run_the_plan_reads_the_targets_stats_only():
    # The guard counts the other members by their configuration; the big answer,
    # every member's stats, is read once, by the floor check after a write.
    names = ["10.0.0.%d:80" % i for i in range(1, 6)]
    session = FakeSession(login_ok(), members_answer(*[item(n) for n in names]),
                          stats_answer("/Common/web", ("10.0.0.1:80", 2)))
    backend = backend_for(session)
    backend.validate(Request("drained", f5.MemberSelector.from_params(name="10.0.0.1:80"), containers=["/Common/web"]))
    members = backend.read(["/Common/web"])
    assert [(m.name, m.sessions, m.health) for m in members][:2] == [("10.0.0.1:80", 2, "up"), ("10.0.0.2:80", 0, "up")]
    assert session.paths()[-1] == "GET /mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.1:80/stats"


def test_poll_with_many_targets_reads_the_pool_stats_once():
    names = ["10.0.0.%d:80" % i for i in range(1, 5)]
    # The poll reads the stats first and the failover state after them (a
    # failover between the two must not let a standby's stats end a wait).
    session = FakeSession(login_ok(), members_answer(*[item(n) for n in names]),
                          stats_answer("/Common/web", *[(n, 1) for n in names]),
                          stats_answer("/Common/web", *[(n, 0) for n in names[:3]]), STANDALONE)
    backend = backend_for(session, selector=f5.MemberSelector(port=80))
    backend.read(["/Common/web"])
    before = len(session.paths())
    polled = backend.poll(["/Common/web"])
    assert session.paths()[before:] == ["GET /mgmt/tm/ltm/pool/~Common~web/members/stats",
                                        "GET /mgmt/tm/cm/device-group"]
    # A member missing from the stats was deleted meanwhile: it reads as gone.
    assert [(m.name, m.state, m.sessions) for m in polled][-1] == ("10.0.0.4:80", "absent", 0)


def test_a_poll_sees_a_member_somebody_else_enabled_after_confirming_it():
    from ansible_collections.gentle.lb.plugins.module_utils.member import Change
    session = FakeSession(login_ok(), members_answer(item("10.0.0.1:80"), item("10.0.0.2:80")),
                          stats_answer("/Common/web", ("10.0.0.1:80", 3), ("10.0.0.2:80", 0)), STANDALONE,
                          FakeResponse(200, item("10.0.0.1:80", session="user-disabled")),
                          stats_answer("/Common/web", ("10.0.0.1:80", 3, DISABLED_STATS), ("10.0.0.2:80", 0)),
                          # the operator's enable shows in the stats, and the configuration confirms it:
                          stats_answer("/Common/web", ("10.0.0.1:80", 3, ENABLED_STATS)),
                          FakeResponse(200, item("10.0.0.1:80", session="monitor-enabled")))
    backend = backend_for(session, selector=f5.MemberSelector.from_params(name="10.0.0.1:80"))
    members = backend.read(["/Common/web"])
    backend.identity()
    backend.apply(Change(members[0], "drained", None), None)
    after = backend.read(["/Common/web"])                 # the floor check: stats only
    assert session.paths()[-1] == "GET /mgmt/tm/ltm/pool/~Common~web/members/stats"
    assert [(m.name, m.state) for m in after] == [("10.0.0.1:80", "drained"), ("10.0.0.2:80", "present")]
    first = backend.poll(["/Common/web"])                 # the floor check's answer, no request
    assert [(m.name, m.state) for m in first] == [("10.0.0.1:80", "drained")]
    assert len(session.calls) == 6
    second = backend.poll(["/Common/web"])
    assert [(m.name, m.state) for m in second] == [("10.0.0.1:80", "present")]
    assert session.paths()[-2:] == ["GET /mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.1:80/stats",
                                    "GET /mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.1:80"]


def test_stats_that_lag_behind_our_write_are_not_taken_for_a_change():
    from ansible_collections.gentle.lb.plugins.module_utils.member import Change
    session = FakeSession(login_ok(), members_answer(item("10.0.0.1:80"), item("10.0.0.2:80")),
                          stats_answer("/Common/web", ("10.0.0.1:80", 3), ("10.0.0.2:80", 0)), STANDALONE,
                          FakeResponse(200, item("10.0.0.1:80", session="user-disabled")),
                          # stats still say enabled right after our disable
                          stats_answer("/Common/web", ("10.0.0.1:80", 3, ENABLED_STATS), ("10.0.0.2:80", 0)),
                          FakeResponse(200, item("10.0.0.1:80", session="user-disabled")))
    backend = backend_for(session, selector=f5.MemberSelector.from_params(name="10.0.0.1:80"))
    members = backend.read(["/Common/web"])
    backend.identity()
    backend.apply(Change(members[0], "drained", None), None)
    # The floor check counts it out of rotation (our write), the safe side for the guard...
    assert [m.state for m in backend.read(["/Common/web"])] == ["drained", "present"]
    # ...and the first look confirms against the configuration before calling it changed.
    assert [m.state for m in backend.poll(["/Common/web"])] == ["drained"]
    assert session.paths()[-1] == "GET /mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.1:80"


def test_the_floor_check_sees_a_concurrent_disable():
    from ansible_collections.gentle.lb.plugins.module_utils.member import Change
    session = FakeSession(login_ok(), members_answer(item("10.0.0.1:80"), item("10.0.0.2:80")),
                          stats_answer("/Common/web", ("10.0.0.1:80", 0), ("10.0.0.2:80", 0)),
                          FakeResponse(200, item("10.0.0.1:80", session="user-disabled")),
                          stats_answer("/Common/web", ("10.0.0.1:80", 0, DISABLED_STATS),
                                       ("10.0.0.2:80", 0, DISABLED_STATS), ("10.0.0.9:80", 0)))
    backend = backend_for(session, selector=f5.MemberSelector.from_params(name="10.0.0.1:80"))
    members = backend.read(["/Common/web"])
    backend.apply(Change(members[0], "drained", None), None)
    after = dict((m.name, m.state) for m in backend.read(["/Common/web"]))
    # another run disabled 10.0.0.2 meanwhile; and 10.0.0.9 was added (known from its stats only)
    assert after == {"10.0.0.1:80": "drained", "10.0.0.2:80": "drained", "10.0.0.9:80": "present"}


@pytest.mark.parametrize("stats, admin", [
    (dict(sessionStatus="enabled", **{"status.enabledState": "enabled"}), "enabled"),
    (dict(sessionStatus="user-disabled", **{"status.enabledState": "disabled"}), "disabled"),
    (dict(sessionStatus="user-disabled", **{"status.enabledState": "disabled", "status.statusReason":
                                            "Forced down"}), "forced_offline"),
    (dict(monitorStatus="forced down", sessionStatus="user-disabled"), "forced_offline"),
    (dict(sessionStatus="addr-disabled", **{"status.enabledState": "disabled-by-parent"}), None),
    ({"status.enabledState": "disabled-by-parent", "status.statusReason": "Forced down"}, None),
    ({"serverside.curConns": 3}, None),                  # 11.x or a partial answer: cannot tell
])
def test_status_admin_state(stats, admin):
    assert f5.status_admin_state(stats) == admin


@pytest.mark.parametrize("mode, state, body", [
    ("disabled", "drained", {"session": "user-disabled", "state": "user-up"}),
    ("forced_offline", "drained", {"session": "user-disabled", "state": "user-down"}),
    ("disabled", "present", {"session": "user-enabled", "state": "user-up"}),
])
def test_apply_always_sends_both_fields(mode, state, body):
    from ansible_collections.gentle.lb.plugins.module_utils.member import Change
    session = FakeSession(login_ok(), FakeResponse(200, {}))
    backend = backend_for(session, drain_mode=mode)
    record = f5.member_record("/Common/web", item("10.0.0.3%2:80", address="10.0.0.3%2"))
    backend.apply(Change(record, state, None), None)
    method, path, kwargs = session.calls[-1]
    assert (method, path) == ("PATCH", "mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.3%252:80")
    assert json.loads(kwargs["data"]) == body


def test_the_ratio_is_sent_only_when_it_changes():
    # An undo (or a present with the same weight) sends the two fields only, which the Operator role may.
    from ansible_collections.gentle.lb.plugins.module_utils.member import Change
    session = FakeSession(login_ok(), FakeResponse(200, {}), FakeResponse(200, {}))
    backend = backend_for(session)
    record = f5.member_record("/Common/web", item("10.0.0.3:80", session="user-disabled", ratio=2))
    backend.apply(Change(record, "present", 2), None)
    assert json.loads(session.calls[-1][2]["data"]) == {"session": "user-enabled", "state": "user-up"}
    backend.apply(Change(record, "present", 5), None)
    assert json.loads(session.calls[-1][2]["data"]) == {"session": "user-enabled", "state": "user-up", "ratio": 5}


def test_absent_deletes_the_member_never_the_node():
    from ansible_collections.gentle.lb.plugins.module_utils.member import Change
    session = FakeSession(login_ok(), FakeResponse(200, {}))
    backend = backend_for(session)
    backend.apply(Change(f5.member_record("/Common/web", item("10.0.0.7:80")), "absent", None), None)
    assert session.paths()[-1] == "DELETE /mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.7:80"
    assert not any("/ltm/node" in p for p in session.paths())


def test_force_is_forced_offline_and_says_connections_stay():
    session = FakeSession(login_ok(), FakeResponse(200, {}))
    backend = backend_for(session)
    record = f5.member_record("/Common/web", item("10.0.0.1:80", session="user-disabled"),
                              {"serverside.curConns": 4})
    note = backend.force([record])
    assert json.loads(session.calls[-1][2]["data"]) == {"session": "user-disabled", "state": "user-down"}
    assert "cannot end open connections" in note and "4 still open" in note


def test_access_denied_names_the_missing_permission():
    denied = ('{"code":400,"message":"01070822:3: Access Denied: user (op) does not have create access to '
              'object (pool_member)","errorStack":[],"apiError":3}')
    session = FakeSession(login_ok(), FakeResponse(400, text=denied))
    rest, dummy = client(session)
    with pytest.raises(PermissionDeniedError) as error:
        rest.request("POST", "/x", body={}, what="member 10.0.0.9:80 in pool /Common/web")
    assert error.value.msg.startswith("member 10.0.0.9:80 in pool /Common/web: user admin lacks create access to "
                                      "pool_member on F5 bigip.example.com:443, so it may not add members")
    assert "\n" not in error.value.msg


def test_validate_refuses_bad_weight_and_drain_mode():
    backend = f5.F5Backend(f5.RestTransport(client(FakeSession())[0]))
    selector = f5.MemberSelector.from_params(name="10.0.0.1:80")
    with pytest.raises(InvalidInputError):
        backend.validate(Request("present", selector, weight=0))
    with pytest.raises(InvalidInputError):
        backend.validate(Request("present", selector, weight=70000))
    with pytest.raises(InvalidInputError):
        backend.validate(Request("drained", selector, options={"drain_mode": "kill"}))
    backend.validate(Request("drained", selector, weight=3))     # ignored for drained: same options both ways


def test_connect_needs_server_user_password():
    with pytest.raises(InvalidInputError) as error:
        f5.connect({"server": None, "user": "a", "password": "b"})
    assert "F5_SERVER" in error.value.msg
    with pytest.raises(InvalidInputError) as error:
        f5.connect({"server": "x", "user": "a", "password": None})
    assert "F5_PASSWORD" in error.value.msg


def test_the_ladder_refuses_what_it_cannot_do():
    assert f5.check_ladder(None, "disabled") is None
    assert f5.check_ladder(5, "disabled") == 5.0
    with pytest.raises(InvalidInputError):
        f5.check_ladder(-1, "disabled")
    with pytest.raises(InvalidInputError):
        f5.check_ladder(5, "forced_offline")


@pytest.mark.parametrize("value", ["web\n", " web", "web "])
def test_names_are_matched_whole(value):
    with pytest.raises(InvalidInputError):
        f5.pool_path(value, "Common")
    with pytest.raises(InvalidInputError):
        f5.parse_member_spec(name=value + "1:80")
    with pytest.raises(InvalidInputError):
        f5.check_partition(value)
    with pytest.raises(InvalidInputError):
        f5.parse_member_spec(address="10.0.0.1" + value[3:] if value.startswith("web") else value + "10.0.0.1")


# --------------------------------------------------------------------------
# HA facts
# --------------------------------------------------------------------------

def test_device_facts_of_a_pair_and_of_a_standalone_device():
    groups = [{"name": "device_trust_group", "type": "sync-only", "autoSync": "enabled"},
              {"name": "dg", "fullPath": "/Common/dg", "type": "sync-failover", "autoSync": "disabled",
               "devicesReference": {"items": [{"name": "b1"}, {"name": "b2"}]}}]
    devices = [{"name": "b1", "managementIp": "10.1.0.1", "failoverState": "standby", "selfDevice": "true"},
               {"name": "b2", "managementIp": "10.1.0.2", "failoverState": "active", "selfDevice": "false"}]
    facts = f5.device_facts(groups, devices)
    assert facts["name"] == "b1" and facts["state"] == "standby"
    assert facts["group"] == {"name": "/Common/dg", "auto_sync": False, "devices": ["b1", "b2"]}
    assert [d["address"] for d in facts["devices"] if d["state"] == "active"] == ["10.1.0.2"]
    assert f5.device_facts(groups[:1], devices)["group"] is None


# --------------------------------------------------------------------------
# The token cache
# --------------------------------------------------------------------------

def test_token_cache_keeps_a_token_for_the_same_password_only(tmp_path):
    now = [1000.0]
    cache = f5.TokenCache(str(tmp_path / "tokens"), clock=lambda: now[0])
    assert cache.store("bigip", 443, "admin", "secret", "T1", expires=2200.0)
    assert cache.load("bigip", 443, "admin", "secret")["token"] == "T1"
    assert cache.load("bigip", 443, "admin", "wrong") is None          # another password never gets it
    assert cache.load("bigip", 443, "ops", "secret") is None
    assert cache.load("other", 443, "admin", "secret") is None
    now[0] = 2200.0 - f5.TOKEN_REUSE_MARGIN + 1                         # about to expire: not reused
    assert cache.load("bigip", 443, "admin", "secret") is None
    text = "".join(p.read_text() for p in (tmp_path / "tokens").iterdir())
    assert "secret" not in text and "T1" in text
    assert oct((tmp_path / "tokens").stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in (tmp_path / "tokens").iterdir())


def test_token_cache_refuses_a_directory_others_can_read(tmp_path):
    directory = tmp_path / "tokens"
    cache = f5.TokenCache(str(directory))
    assert cache.store("bigip", 443, "admin", "secret", "T1", expires=time_now() + 1000)
    directory.chmod(0o755)
    assert cache.load("bigip", 443, "admin", "secret") is None
    assert "has mode 755, which lets group or others in, so it is not used" in cache.warning
    directory.chmod(0o700)
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert not f5.TokenCache(str(link)).store("bigip", 443, "admin", "secret", "T2", expires=time_now() + 1000)


def time_now():
    import time
    return time.time()


def test_a_cached_token_is_reused_kept_and_renewed_when_refused(tmp_path):
    cache = f5.TokenCache(str(tmp_path / "tokens"))
    first = FakeSession(login_ok("T1"), FakeResponse(200, {"ok": 1}))
    rest, dummy = client(first, cache=cache)
    rest.get("/x")
    rest.close()
    assert first.paths() == ["POST /mgmt/shared/authn/login", "GET /x"]          # kept: no DELETE
    second = FakeSession(FakeResponse(200, {"ok": 2}))
    rest, dummy = client(second, cache=cache)
    assert rest.get("/x") == {"ok": 2}
    rest.close()
    assert second.paths() == ["GET /x"]                                            # no login at all
    assert second.calls[0][2]["headers"]["X-F5-Auth-Token"] == "T1"
    third = FakeSession(EXPIRED, login_ok("T2"), FakeResponse(200, {"ok": 3}))
    rest, dummy = client(third, cache=cache)
    assert rest.get("/x") == {"ok": 3}
    rest.close()
    assert third.paths() == ["GET /x", "POST /mgmt/shared/authn/login", "GET /x"]
    assert cache.load("bigip.example.com", 443, "admin", "secret")["token"] == "T2"


# --------------------------------------------------------------------------
# SOAP value parsing
# --------------------------------------------------------------------------

def test_soap_u64_and_stats():
    assert f5.soap_u64({"high": 1, "low": 5}) == (1 << 32) + 5
    entry = {"member": {"address": "/Common/10.0.0.1", "port": 80}, "statistics": [
        {"type": "STATISTIC_SERVER_SIDE_CURRENT_CONNECTIONS", "value": {"high": 0, "low": 7}},
        {"type": "STATISTIC_CURRENT_SESSIONS", "value": {"high": 0, "low": 2}},
        {"type": "STATISTIC_TOTAL_REQUESTS", "value": {"high": 0, "low": 99}},
        {"type": "STATISTIC_SERVER_SIDE_TOTAL_CONNECTIONS", "value": {"high": 1, "low": 0}},
        {"type": "STATISTIC_SERVER_SIDE_BYTES_IN", "value": {"high": 0, "low": 10}},
        {"type": "STATISTIC_SERVER_SIDE_PACKETS_IN", "value": {"high": 0, "low": 4}}]}
    # The counters REST also has, under REST's names; SOAP's bytes become REST's bits.
    assert f5.soap_stats(entry) == ("/Common/10.0.0.1", 80, {
        "serverside.curConns": 7, "curSessions": 2, "totRequests": 99, "serverside.totConns": 1 << 32,
        "serverside.bitsIn": 80})


@pytest.mark.parametrize("node_path, port, session, monitor, name, admin", [
    ("/Common/10.0.0.1", 80, "SESSION_STATUS_ENABLED", "MONITOR_STATUS_UP", "10.0.0.1:80", "enabled"),
    ("/Common/10.0.0.1", 80, "SESSION_STATUS_FORCED_DISABLED", "MONITOR_STATUS_UP", "10.0.0.1:80", "disabled"),
    ("/Common/10.0.0.1", 80, "SESSION_STATUS_FORCED_DISABLED", "MONITOR_STATUS_FORCED_DOWN", "10.0.0.1:80",
     "forced_offline"),
    ("/Common/2001:db8::10", 443, "SESSION_STATUS_ENABLED", "MONITOR_STATUS_UNCHECKED", "2001:db8::10.443",
     "enabled"),
    ("/DMZ/web1", 8080, "SESSION_STATUS_ADDRESS_DISABLED", "MONITOR_STATUS_CHECKING", "web1:8080", "enabled"),
])
def test_soap_item_maps_status_enums(node_path, port, session, monitor, name, admin):
    soap = f5.soap_item(node_path, port, session, monitor)
    assert soap["name"] == name
    assert f5.admin_state(soap["session"], soap["state"]) == admin
