# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every bad input and fault of issue 2 against a real HAProxy: each gives a
one-line error naming the thing and what to do, and nothing is changed."""

from __future__ import annotations

import os
import time

import pytest

from conftest import run_module_as, wait_until
from helpers import run_module

NOBODY = 65534


def assert_clean_failure(result, lab, snapshot, *words):
    assert result.failed, result
    assert result["changed"] is False
    assert "\n" not in result["msg"]
    for word in words:
        assert word in result["msg"], result["msg"]
    assert lab.admin_states() == snapshot


@pytest.mark.one_version
def test_unknown_backend(lab, member):
    snapshot = lab.admin_states()
    result = member(backend="nosuch", server="web3", state="drained")
    assert_clean_failure(result, lab, snapshot, "backend nosuch: not found", "backends: app, api, static")


@pytest.mark.one_version
def test_unknown_backend_for_absent_too(lab, member):
    snapshot = lab.admin_states()
    result = member(backend=["app", "nosuch"], server="web3", state="absent")
    assert_clean_failure(result, lab, snapshot, "backend nosuch: not found")


@pytest.mark.one_version
def test_frontend_is_not_a_backend(lab, member):
    snapshot = lab.admin_states()
    result = member(backend="fe_main", server="web3", state="drained")
    assert_clean_failure(result, lab, snapshot, "backend fe_main: not found")


@pytest.mark.one_version
def test_unknown_server(lab, member):
    snapshot = lab.admin_states()
    result = member(server="web9", state="drained")
    assert_clean_failure(result, lab, snapshot, "server web9: not found in any backend")


@pytest.mark.one_version
@pytest.mark.parametrize("backend", ["app", None])
def test_absent_of_a_server_haproxy_does_not_have_is_an_error(lab, member, backend):
    # HAProxy never deletes a configured server: a miss is a typo ("wbe1"),
    # never "already absent" while the real server keeps serving.
    snapshot = lab.admin_states()
    args = dict(server="wbe1", state="absent")
    if backend:
        args["backend"] = backend
    result = member(**args)
    assert result.failed and result["error_type"] == "NotFoundError"
    if backend:
        assert result["msg"].startswith("server wbe1: not found in backend app;"), result["msg"]
    else:
        assert "not found in any backend (searched api, app, static, tracking)" in result["msg"], result["msg"]
    assert "never deletes" in result["msg"]
    assert lab.admin_states() == snapshot


@pytest.mark.one_version
@pytest.mark.parametrize("field,value", [
    ("server", "web1;disable server app/web2"),
    ("server", "web1\ndisable server app/web2"),
    ("server", "web1 ; set weight app/web2 0"),
    ("backend", "app;disable server app/web2"),
    ("backend", "app/web2"),
    # "$" matches before a final newline: the check must match the whole string.
    ("server", "web1\n"),
    ("backend", "app\n"),
])
@pytest.mark.parametrize("transport", ["unix", "stats"])
@pytest.mark.parametrize("state", ["drained", "absent"])
def test_hostile_names_never_reach_haproxy(lab, member, field, value, transport, state):
    snapshot = lab.admin_states()
    args = dict(backend="app", server="web1", state=state)
    args[field] = value
    result = member(transport=transport, **args)
    assert_clean_failure(result, lab, snapshot, "not a valid HAProxy name")
    assert result["error_type"] == "InvalidInputError"
    assert lab.admin("app", "web2") == 0                 # web2 not put in MAINT or DRAIN
    info = run_module("haproxy_member_info", dict(lab.conn(transport), **{field: value}))
    assert info.failed and "not a valid HAProxy name" in info["msg"]


@pytest.mark.one_version
@pytest.mark.parametrize("value,words", [("127.0.0.1\n", "not an IP address"),
                                         ("127.0.0.1:80\n", "is not a number between 1 and 65535")])
def test_an_address_ending_in_a_newline_is_refused(lab, member, value, words):
    snapshot = lab.admin_states()
    result = member(address=value, state="absent")
    assert_clean_failure(result, lab, snapshot, words)
    assert result["error_type"] == "InvalidInputError"


@pytest.mark.one_version
def test_socket_path_missing(lab, member):
    result = member(socket="/run/nonexistent/admin.sock", server="web3", state="drained")
    assert result.failed
    assert result["msg"] == (
        "socket /run/nonexistent/admin.sock: no such socket file; check the path against the "
        "'stats socket' line of haproxy.cfg and that HAProxy is running on this host (set socket or "
        "HAPROXY_SOCKET)")


@pytest.mark.one_version
def test_tcp_socket_refused(lab, member):
    result = member(socket="tcp://127.0.0.1:1", server="web3", state="drained")
    assert result.failed and "tcp://127.0.0.1:1: connection refused" in result["msg"]


@pytest.mark.one_version
def test_socket_permission_denied(lab):
    """chmod 000 on the socket and a user who is not root (root ignores modes)."""
    snapshot = lab.admin_states()
    workdir_mode = os.stat(lab.workdir).st_mode & 0o777
    socket_mode = os.stat(lab.admin_socket).st_mode & 0o777
    os.chmod(lab.workdir, 0o711)
    os.chmod(lab.admin_socket, 0o000)
    try:
        result = run_module_as(NOBODY, NOBODY, "haproxy_member",
                               dict(socket=lab.admin_socket, backend="app", server="web3", state="drained"))
        info = run_module_as(NOBODY, NOBODY, "haproxy_member_info", dict(socket=lab.admin_socket))
    finally:
        os.chmod(lab.admin_socket, socket_mode)
        os.chmod(lab.workdir, workdir_mode)
    for res in (result, info):
        assert res["failed"] is True
        assert res["msg"].startswith("socket %s: permission denied opening the socket" % lab.admin_socket)
        assert "become: true" in res["msg"]
    assert lab.admin_states() == snapshot


def test_socket_at_level_operator(lab, member):
    snapshot = lab.admin_states()
    for check in (False, True):
        result = member(check=check, socket=lab.operator_socket, backend="app", server="web3", state="drained")
        assert_clean_failure(result, lab, snapshot, "level operator, but changing servers needs level admin",
                             "add 'level admin'")
    info = run_module("haproxy_member_info", dict(socket=lab.operator_socket, backend="app"))
    assert not info.failed and len(info["members"]) == 5
    # nothing to change: reading is enough, so the level does not matter
    same = member(socket=lab.operator_socket, backend="app", server="web3", state="present")
    assert not same.failed and same["changed"] is False


@pytest.mark.one_version
def test_haproxy_stops_mid_wait(fresh_lab, background):
    held = fresh_lab.hold("web3")
    run = background("haproxy_member", dict(socket=fresh_lab.admin_socket, backend="app", server="web3",
                                            state="drained"))
    wait_until(lambda: fresh_lab.admin("app", "web3") == 0x08, timeout=5, what="web3 drained")
    time.sleep(0.3)
    assert not run.done
    killed = time.monotonic()
    fresh_lab.process.kill()
    result = run.join(30)
    print("\n%s: failed %.3fs after HAProxy was killed" % (fresh_lab.version, run.finished_at - killed))
    assert result.failed
    assert result["msg"] == ("socket %s: HAProxy stopped answering while waiting for the goal "
                             "(connection refused); check that HAProxy is running, then rerun this task"
                             % fresh_lab.admin_socket)
    assert run.finished_at - killed < 2.0
    held.release()
    after = run_module("haproxy_member", dict(socket=fresh_lab.admin_socket, server="web3", state="present"))
    assert after.failed and "connection refused; HAProxy is not running" in after["msg"]


def test_stats_page_without_admin(lab, member):
    snapshot = lab.admin_states()
    result = member(stats_url=lab.stats_url_readonly, stats_user=lab.stats_user,
                    stats_password=lab.stats_password, backend="app", server="web3", state="drained")
    assert_clean_failure(result, lab, snapshot, "st=DENY", "configure 'stats admin if <condition>'")


def test_stats_page_wrong_password(lab, member):
    snapshot = lab.admin_states()
    result = member(stats_url=lab.stats_url, stats_user=lab.stats_user, stats_password="wrong",
                    backend="app", server="web3", state="drained")
    assert_clean_failure(result, lab, snapshot, "user admin was refused (HTTP 401)", "stats_password")


def test_stats_page_without_credentials(lab, member):
    result = member(stats_url=lab.stats_url, backend="app", server="web3", state="drained")
    assert result.failed and "set stats_user and stats_password" in result["msg"]


@pytest.mark.one_version
def test_stats_page_cannot_set_weight(lab, member):
    result = member(transport="stats", backend="app", server="web1", state="present", weight=5)
    assert result.failed and "the stats page cannot change weights" in result["msg"]


@pytest.mark.one_version
def test_stats_page_cannot_add(lab, member):
    result = member(transport="stats", backend="app", server="web9", state="present")
    assert result.failed and "the stats page cannot add servers" in result["msg"]


@pytest.mark.one_version
def test_stats_page_cannot_add_by_name_and_address(lab, member):
    result = member(transport="stats", backend="app", server="web9", address="127.0.0.1:9", state="present")
    assert result.failed and "the stats page cannot add servers" in result["msg"]


@pytest.mark.one_version
@pytest.mark.parametrize("weight", [300, -1, "257", "abc", "10;x", "1.5"])
def test_weight_out_of_range(lab, member, weight):
    snapshot = lab.admin_states()
    result = member(backend="app", server="web1", state="present", weight=weight)
    assert_clean_failure(result, lab, snapshot, "weight", "0 to 256")


@pytest.mark.one_version
def test_bad_address(lab, member):
    result = member(address="10.0.0.1;x", state="drained")
    assert result.failed and result["msg"].startswith("address '10.0.0.1;x': not an IP address")


@pytest.mark.one_version
def test_socket_and_stats_url_exclusive(lab, member):
    result = member(socket=lab.admin_socket, stats_url=lab.stats_url, server="web1", state="present")
    assert result.failed and "mutually exclusive" in result["msg"]


@pytest.mark.one_version
def test_server_or_address_required(lab, member):
    result = member(backend="app", state="present")
    assert result.failed and "server, address" in result["msg"]
