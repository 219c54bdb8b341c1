# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""haproxy.py: parsers over replies captured from HAProxy 2.6, 3.0 and 3.2
(tests/unit/fixtures/haproxy/), name/weight/address validation, the runtime
API client against a fake unix-socket server that replays those replies, the
stats-page client against a fake HTTP server, and HAProxyBackend's planning
through the core."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import socket
import tempfile
import threading

import pytest

from http.server import BaseHTTPRequestHandler, HTTPServer

from ansible_collections.gentle.lb.plugins.module_utils import haproxy, haproxy_files, haproxy_stats
from ansible_collections.gentle.lb.plugins.module_utils import member as core
from ansible_collections.gentle.lb.plugins.module_utils.member import Request

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "haproxy")
VERSIONS = ("2.6", "3.0", "3.2")


def fixture(version, name):
    with open(os.path.join(FIXTURES, version, name), "rb") as handle:
        return handle.read()


def text(version, name):
    return fixture(version, name).decode("utf-8")


# --------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------

# server: (srv_admin_state, state, admin flags, health, show stat status)
STATES = {
    "ready1": (0, "present", [], "up", "UP"),
    "drain1": (8, "drained", ["FDRAIN"], "up", "DRAIN"),
    "maint1": (1, "absent", ["FMAINT"], "down", "MAINT"),
    "drainthenmaint1": (1, "absent", ["FMAINT"], "down", "MAINT"),
    "drainthendisable1": (1, "absent", ["FMAINT"], "down", "MAINT"),
    "trackm1": (2, "absent", ["IMAINT"], "down", "MAINT (via states/maint1)"),
    "trackd1": (16, "drained", ["IDRAIN"], "up", "DRAIN"),
    "trackm2": (10, "absent", ["IMAINT", "FDRAIN"], "down", "MAINT (via states/maint1)"),
    "trackd2": (17, "absent", ["FMAINT", "IDRAIN"], "down", "MAINT"),
    "cfgdisabled1": (5, "absent", ["FMAINT", "CMAINT"], "down", "MAINT"),
    "cfgdisabled2": (12, "drained", ["CMAINT", "FDRAIN"], "up", "DRAIN"),
    "downdrain1": (8, "drained", ["FDRAIN"], "down", "DOWN"),
    "down1": (0, "present", [], "down", "DOWN"),
    "weight0": (0, "present", [], "up", "UP"),
    "nocheck1": (0, "present", [], "unknown", "no check"),
}


def states_records(version, after_ready=False):
    state = "states_show_servers_state_after_ready.txt" if after_ready else "states_show_servers_state.txt"
    stat = "states_show_stat_after_ready.txt" if after_ready else "states_show_stat.txt"
    rows = haproxy.server_rows(haproxy.parse_servers_state(text(version, state)),
                               haproxy.parse_show_stat(text(version, stat)))
    return dict((r["name"], r) for r in rows)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("server", sorted(STATES))
def test_every_admin_state(version, server):
    admin, state, flags, health, status = STATES[server]
    record = states_records(version)[server]
    assert record["admin_state"] == admin
    assert record["state"] == state
    assert haproxy.admin_flags(record["admin_state"]) == flags
    assert record["health"] == health
    assert record["status"] == status


@pytest.mark.parametrize("version", VERSIONS)
def test_states_fixture_has_every_server(version):
    assert sorted(states_records(version)) == sorted(STATES)


@pytest.mark.parametrize("version", VERSIONS)
def test_drained_down_server_is_drained_by_bitmask_but_down_in_status(version):
    """The reason admin state comes from show servers state: show stat says DOWN."""
    record = states_records(version)["downdrain1"]
    assert record["status"] == "DOWN"
    assert record["state"] == "drained"
    assert record["operational_state"] == "stopped"


@pytest.mark.parametrize("version", VERSIONS)
def test_config_disabled_alone_is_not_maintenance(version):
    """`disabled` in the config is 0x05; after `state ready` 0x04 stays, server UP."""
    after = states_records(version, after_ready=True)
    for name in ("cfgdisabled1", "cfgdisabled2"):
        assert after[name]["admin_state"] == 4
        assert after[name]["state"] == "present"
        assert after[name]["operational_state"] == "running"
        assert haproxy.admin_flags(4) == ["CMAINT"]


@pytest.mark.parametrize("version", VERSIONS)
def test_ready_clears_only_forced_bits(version):
    after = states_records(version, after_ready=True)
    assert after["trackm2"]["admin_state"] == haproxy.IMAINT          # 10 -> 2
    assert after["trackm2"]["state"] == "absent"
    assert after["trackd2"]["admin_state"] == haproxy.IDRAIN          # 17 -> 16
    assert after["trackd2"]["state"] == "drained"


@pytest.mark.parametrize("value,state", [
    (0, "present"), (0x01, "absent"), (0x02, "absent"), (0x04, "present"), (0x05, "absent"),
    (0x08, "drained"), (0x10, "drained"), (0x20, "absent"), (0x40, "present"), (0x09, "absent"),
    (0x0c, "drained"), (0x28, "absent"), (0x48, "drained"), (0x7f, "absent"),
])
def test_admin_to_state_every_bit(value, state):
    assert haproxy.admin_to_state(value) == state


@pytest.mark.parametrize("version", VERSIONS)
def test_tracked_column(version):
    records = states_records(version)
    assert records["trackm1"]["tracks"] == "states/maint1"
    assert records["trackd1"]["tracks"] == "states/drain1"
    assert records["ready1"]["tracks"] is None


@pytest.mark.parametrize("version", VERSIONS)
def test_show_stat_parsed_by_header_name(version):
    rows = haproxy.parse_show_stat(text(version, "show_stat.txt"))
    header_count = len(text(version, "show_stat.txt").splitlines()[0][2:].rstrip(",").split(","))
    assert header_count == {"2.6": 128, "3.0": 205, "3.2": 207}[version]
    servers = [r for r in rows if r["type"] == "2"]
    assert sorted(set(r["pxname"] for r in servers)) == ["api", "app", "static"]
    web1 = [r for r in servers if r["pxname"] == "app" and r["svname"] == "web1"][0]
    assert web1["status"] == "UP" and web1["check_status"] == "L7OK"
    assert web1["addr"].startswith("127.0.0.1:")
    frontends = [r for r in rows if r["type"] == "0"]
    assert frontends and all(r["svname"] == "FRONTEND" for r in frontends)


@pytest.mark.parametrize("version", VERSIONS)
def test_draining_server_counts_open_sessions(version):
    rows = haproxy.server_rows(
        haproxy.parse_servers_state(text(version, "show_servers_state_app_draining.txt")),
        haproxy.parse_show_stat(text(version, "show_stat_app_draining.txt")))
    web2 = [r for r in rows if r["name"] == "web2"][0]
    assert web2["state"] == "drained" and web2["sessions"] == 1 and web2["status"] == "DRAIN"
    others = [r for r in rows if r["name"] != "web2"]
    assert all(r["state"] == "present" and r["sessions"] == 0 for r in others)


@pytest.mark.parametrize("version", VERSIONS)
def test_servers_state_all_backends_and_shared_server(version):
    rows = haproxy.parse_servers_state(text(version, "show_servers_state.txt"))
    by_backend = {}
    for row in rows:
        by_backend.setdefault(row["be_name"], []).append(row["srv_name"])
    assert by_backend["app"] == ["web1", "web2", "web3", "shared1", "nocheck1"]
    assert by_backend["api"] == ["shared1", "api1"]
    assert "stats" not in by_backend           # listen stats has no servers
    nocheck = [r for r in rows if r["srv_name"] == "nocheck1"][0]
    assert nocheck["srv_check_state"] & haproxy.CHK_CONFIGURED == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_runtime_added_server(version):
    rows = haproxy.server_rows(
        haproxy.parse_servers_state(text(version, "show_servers_state_app_added.txt")),
        haproxy.parse_show_stat(text(version, "show_stat_app_added.txt")))
    dyn1 = [r for r in rows if r["name"] == "dyn1"][0]
    assert dyn1["state"] == "absent" and dyn1["admin_state"] == 1
    assert dyn1["operational_state"] == "stopped"
    up = haproxy.parse_servers_state(text(version, "show_servers_state_app_added_up.txt"))
    dyn2 = [r for r in up if r["srv_name"] == "dyn2"][0]
    assert haproxy.admin_to_state(dyn2["srv_admin_state"]) == "present"


@pytest.mark.parametrize("version", VERSIONS)
def test_stats_page_csv_reads_state_from_status(version):
    rows = haproxy.parse_show_stat(text(version, "stats_page_csv_states.txt"))
    records = dict((r["name"], r) for r in haproxy.csv_server_rows(rows))
    assert sorted(records) == sorted(STATES)
    for name, (_admin, state, _flags, health, status) in STATES.items():
        assert records[name]["status"] == status
        assert records[name]["health"] == health
        expected = "present" if name == "downdrain1" else state   # the documented limit
        assert records[name]["state"] == expected, name
        assert records[name]["admin_state"] is None
        assert records[name]["address"] is None                  # the page hides addresses
    assert records["weight0"]["weight"] == 0
    assert "states" in haproxy.backends_in_csv(rows)


@pytest.mark.parametrize("version", VERSIONS)
def test_check_in_progress_marker_is_dropped(version):
    stat = haproxy.parse_show_stat(text(version, "show_stat_app.txt"))
    for row in stat:
        if row["check_status"]:
            row["check_status"] = "* " + row["check_status"]       # shown while a check runs
    rows = haproxy.server_rows(haproxy.parse_servers_state(text(version, "show_servers_state_app.txt")), stat)
    assert [r["check_status"] for r in rows] == ["L7OK", "L7OK", "L7OK", "L7OK", None]
    assert [r["check_status"] for r in haproxy.csv_server_rows(stat)] == ["L7OK", "L7OK", "L7OK", "L7OK", None]


@pytest.mark.parametrize("status,checked,health", [
    ("UP", True, "up"), ("UP 1/2", True, "going_down"), ("UP 2/3", True, "going_down"),
    ("DOWN", True, "down"), ("DOWN 1/2", True, "going_up"), ("DRAIN", True, "up"),
    ("DRAIN", False, "unknown"), ("DRAIN 1/2", True, "going_down"), ("DRAIN (agent)", True, "up"),
    ("NOLB", True, "nolb"), ("NOLB 1/2", True, "nolb"), ("MAINT", True, "down"),
    ("MAINT (via app/web1)", False, "down"), ("MAINT(resolution)", True, "down"),
    ("no check", False, "unknown"), ("DOWN (agent)", True, "down"),
])
def test_status_to_health(status, checked, health):
    assert haproxy.status_to_health(status, checked) == health


def test_parsers_refuse_other_text():
    with pytest.raises(core.CommandError, match="not CSV"):
        haproxy.parse_show_stat("No such proxy.\n")
    with pytest.raises(core.CommandError, match="format version 1"):
        haproxy.parse_servers_state("2\n# be_id\n")


# --------------------------------------------------------------------------
# Replies: severity-output framing, errors by fixture
# --------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,severity,message", [
    ("set_state_ok.txt", None, ""),
    ("get_weight_sev.txt", None, "1 (initial 1)"),
    ("err_no_such_server.txt", 3, "No such server."),
    ("err_permission_denied.txt", 3, "Permission denied"),
    ("add_server_ok.txt", 6, "New server registered."),
    ("add_server_unknown_backend.txt", 3, "No such backend."),   # no trailing blank line on 2.6
    ("del_server_ok.txt", 6, "Server deleted."),
])
def test_split_reply(version, name, severity, message):
    got = haproxy.split_reply(fixture(version, name))
    assert got[:2] == (severity, message)


# --------------------------------------------------------------------------
# A fake runtime API: a real unix socket replaying captured replies
# --------------------------------------------------------------------------

class FakeRuntimeAPI(object):
    """Answers each connection's command line from a table of captured
    replies; records every line received.  Unknown commands get "\\n\\n"
    (what HAProxy answers to a successful write with severity-output)."""

    def __init__(self, replies, silent=False):
        self.replies = replies
        self.silent = silent
        self.lines = []
        self.connections = 0
        self.dir = tempfile.mkdtemp(prefix="fakehap")
        self.path = os.path.join(self.dir, "admin.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(16)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def commands(self):
        prefix = haproxy.SEVERITY_PREFIX
        return [line[len(prefix):] if line.startswith(prefix) else line for line in self.lines]

    @property
    def writes(self):
        return [c for c in self.commands if not c.startswith(("show ", "get "))]

    def _serve(self):
        while not self.stopping:
            try:
                conn, _addr = self.server.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                line = data.decode().rstrip("\n")
                self.lines.append(line)
                if self.silent:
                    threading.Event().wait(2)
                    continue
                command = line[len(haproxy.SEVERITY_PREFIX):] if line.startswith(haproxy.SEVERITY_PREFIX) else line
                # "a; b" runs both, as HAProxy does: one reply after the other
                # (unless a reply to the whole line was captured).
                if command in self.replies:
                    conn.sendall(self._reply(command))
                else:
                    conn.sendall(b"".join(self._reply(part) for part in command.split("; ")))

    def _reply(self, command):
        reply = self.replies.get(command, b"\n\n")
        if callable(reply):
            reply = reply(command)
        return reply

    def close(self):
        if self.stopping:
            return
        self.stopping = True
        self.server.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def lab_a_replies(version, **extra):
    """Replies of lab A (app: web1 web2 web3 shared1 nocheck1; api: shared1 api1)."""
    replies = {
        "show servers state": fixture(version, "show_servers_state.txt"),
        "show stat -1 4 -1": fixture(version, "show_stat.txt"),
        "show servers state app": fixture(version, "show_servers_state_app.txt"),
        "show stat app 4 -1": fixture(version, "show_stat_app.txt"),
        "show servers state nosuch": fixture(version, "err_show_servers_state_unknown.txt"),
        "show backend": fixture(version, "show_backend.txt"),
        "show cli level": b"\n[6]: admin\n\n",
    }
    api_state = [line for line in text(version, "show_servers_state.txt").splitlines()
                 if not line or line[0] in "1#" or line.split()[1] == "api"]
    replies["show servers state api"] = ("\n".join(api_state) + "\n\n").encode()
    replies["show stat api 4 -1"] = "\n".join(
        line for line in text(version, "show_stat.txt").splitlines()
        if line.startswith("# ") or line.startswith("api,")).encode() + b"\n\n"
    replies.update(extra)
    return replies


def states_replies(version, **extra):
    replies = {
        "show servers state states": fixture(version, "states_show_servers_state.txt"),
        "show stat states 4 -1": fixture(version, "states_show_stat.txt"),
        "show cli level": b"\n[6]: admin\n\n",
    }
    replies.update(extra)
    return replies


@pytest.fixture
def fake():
    servers = []

    def start(replies, silent=False):
        server = FakeRuntimeAPI(replies, silent)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,error,words", [
    ("err_no_such_server.txt", core.NotFoundError, "No such server."),
    ("err_no_such_backend.txt", core.NotFoundError, "No such backend."),
    ("err_show_servers_state_unknown.txt", core.NotFoundError, "Can't find backend."),
    ("err_show_stat_unknown.txt", core.NotFoundError, "No such proxy."),
    ("err_permission_denied.txt", core.PermissionDeniedError, "level admin"),
    ("err_permission_denied_set_weight.txt", core.PermissionDeniedError, "level admin"),
    ("err_weight_out_of_range.txt", core.CommandError, "between 0 and 256"),
    ("err_static_weight.txt", core.CommandError, "weight 0% or 100% here"),
    ("add_server_static_backend.txt", core.CommandError, "dynamic balance algorithm"),
    ("add_server_exists.txt", core.CommandError, "already exists"),
    ("err_bad_state.txt", core.CommandError, "expects 'ready'"),
    ("err_unknown_command.txt", core.CommandError, "too old"),
    ("wait_srv_removable_not_maint.txt", core.CommandError, ""),
])
def test_runtime_api_errors(fake, version, name, error, words):
    server = fake({"cmd": fixture(version, name)})
    api = haproxy.RuntimeAPI(server.path, timeout=2)
    with pytest.raises(error) as info:
        api.execute("cmd", "server app/web1")
    assert words in info.value.msg
    assert "\n" not in info.value.msg
    assert server.lines == [haproxy.SEVERITY_PREFIX + "cmd"]


@pytest.mark.parametrize("version", VERSIONS)
def test_runtime_api_info_replies_are_success(fake, version):
    server = fake({"add": fixture(version, "add_server_ok.txt"), "level": fixture(version, "show_cli_level_tcp.txt"),
                   "set": fixture(version, "set_state_ok.txt")})
    api = haproxy.RuntimeAPI(server.path)
    assert api.execute("add").strip() == "New server registered."
    assert api.execute("set").strip() == ""


def test_one_connection_per_backend_read(fake):
    # State and counters in one line: one process answers both, even mid-reload.
    server = fake(lab_a_replies("2.6"))
    api = haproxy.RuntimeAPI(server.path)
    records = api.servers(["app", "api"])
    assert server.connections == 2
    assert server.commands == ["show servers state app; show stat app 4 -1",
                               "show servers state api; show stat api 4 -1"]
    assert [(r["backend"], r["name"]) for r in records][-2:] == [("api", "shared1"), ("api", "api1")]


def test_level(fake):
    server = fake({"show cli level": b"\n[6]: operator\n\n"})
    assert haproxy.RuntimeAPI(server.path).level() == "operator"


@pytest.mark.parametrize("version", VERSIONS)
def test_level_unknown_on_old_haproxy(fake, version):
    server = fake({"show cli level": fixture(version, "err_unknown_command.txt")})
    assert haproxy.RuntimeAPI(server.path).level() is None


def test_socket_path_missing():
    api = haproxy.RuntimeAPI("/nonexistent/haproxy.sock", timeout=1)
    with pytest.raises(core.UnreachableError, match="no such socket file") as info:
        api.execute("show info")
    assert "/nonexistent/haproxy.sock" in info.value.msg and "HAPROXY_SOCKET" in info.value.msg


def test_socket_refused(tmp_path):
    path = str(tmp_path / "dead.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)          # bound but not listening: what a killed HAProxy leaves behind
    try:
        with pytest.raises(core.UnreachableError, match="connection refused"):
            haproxy.RuntimeAPI(path, timeout=1).execute("show info")
    finally:
        sock.close()


def test_socket_permission_denied_maps_to_permission_error(monkeypatch):
    api = haproxy.RuntimeAPI("/run/haproxy/admin.sock")

    def refuse():
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(api, "_connect", refuse)
    with pytest.raises(core.PermissionDeniedError, match="become: true"):
        api.execute("show info")


def test_tcp_refused():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(core.UnreachableError, match="connection refused"):
        haproxy.RuntimeAPI("tcp://127.0.0.1:%d" % port, timeout=1).execute("show info")


def test_timeout(fake):
    server = fake({}, silent=True)
    with pytest.raises(core.UnreachableError, match="timeout=0.2s"):
        haproxy.RuntimeAPI(server.path, timeout=0.2).execute("show info")


@pytest.mark.parametrize("target,tcp", [
    ("/run/haproxy/admin.sock", None), ("tcp://127.0.0.1:9999", ("127.0.0.1", 9999)),
    ("tcp://[::1]:9999", ("::1", 9999)), ("ipv4@10.0.0.1:9999", ("10.0.0.1", 9999)),
])
def test_socket_targets(target, tcp):
    assert haproxy.RuntimeAPI(target).tcp == tcp


@pytest.mark.parametrize("target", ["tcp://127.0.0.1", "tcp://host:99999", "http://lb:8404/stats", "tcp://:80"])
def test_bad_socket_targets(target):
    with pytest.raises(core.InvalidInputError):
        haproxy.RuntimeAPI(target)


# --------------------------------------------------------------------------
# Validation: names, weights, addresses
# --------------------------------------------------------------------------

HOSTILE = [
    "web1;disable server app/web2", "web1\ndisable server app/web2", "web1 web2", "app/web1",
    "web1\\;x", "#3", "", "web1\r", "wéb1", "web1;", "$(reboot)", "web1\x00",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_refused(name):
    with pytest.raises(core.InvalidInputError, match="not a valid HAProxy name"):
        haproxy.validate_name("server", name)


@pytest.mark.parametrize("name", ["web1", "web-1", "web_1", "web.1", "10.0.0.1:80", "A-Z.a_z:0-9"])
def test_good_names(name):
    assert haproxy.validate_name("server", name) == name


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("field,name", [("server", n) for n in HOSTILE] + [("backend", n) for n in HOSTILE])
def test_hostile_names_never_reach_the_socket(fake, version, field, name):
    server = fake(lab_a_replies(version))
    backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(server.path))
    selector = haproxy.ServerSelector(name="web1")
    containers = ["app"]
    if field == "server":
        selector = haproxy.ServerSelector(name=name)
    else:
        containers = [name]
    request = Request("drained", selector, containers=containers, min_active=0)
    with pytest.raises(core.InvalidInputError):
        core.run(backend, request)
    assert server.connections == 0


@pytest.mark.parametrize("value,parsed", [
    (0, ("absolute", 0)), (256, ("absolute", 256)), ("10", ("absolute", 10)), ("50%", ("percent", 50)),
    (" 100% ", ("percent", 100)), ("0%", ("percent", 0)), ("300%", ("percent", 300)), (None, None),
])
def test_parse_weight(value, parsed):
    assert haproxy.parse_weight(value) == parsed


@pytest.mark.parametrize("value", [257, -1, "300", "-5%", "50.5%", "abc", "5 0", True, 1.5, "%", "10;x"])
def test_weight_out_of_range(value):
    with pytest.raises(core.InvalidInputError, match="0 to 256"):
        haproxy.parse_weight(value)


@pytest.mark.parametrize("weight,initial,absolute", [
    (("absolute", 7), 100, 7), (("percent", 50), 1, 0), (("percent", 50), 3, 1), (("percent", 50), 100, 50),
    (("percent", 100), 1, 1), (("percent", 200), 200, 256), (("percent", 33), 10, 3), (("percent", 50), None, None),
])
def test_resolve_weight_rounds_like_haproxy(weight, initial, absolute):
    assert haproxy.resolve_weight(weight, initial) == absolute


@pytest.mark.parametrize("value,parsed", [
    ("10.0.0.1", ("10.0.0.1", None)), ("10.0.0.1:8080", ("10.0.0.1", 8080)),
    ("[2001:db8::1]:80", ("2001:db8::1", 80)), ("2001:db8::1", ("2001:db8::1", None)),
    ("web1.example.com:80", ("web1.example.com", 80)), (None, (None, None)),
])
def test_parse_address(value, parsed):
    assert haproxy.parse_address(value) == parsed


@pytest.mark.parametrize("value", ["10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1;x", "a b", "10.0.0.1:80\nx"])
def test_bad_address(value):
    with pytest.raises(core.InvalidInputError):
        haproxy.parse_address(value)


def test_selector_matches_ip_or_fqdn():
    web = core.Member("app", "web1", "10.0.0.1", 80, details={"fqdn": "web1.example.com"})
    assert haproxy.selector_from(address="10.0.0.1").matches(web)
    assert haproxy.selector_from(address="10.0.0.1:80").matches(web)
    assert not haproxy.selector_from(address="10.0.0.1:81").matches(web)
    assert haproxy.selector_from(address="web1.example.com").matches(web)
    assert haproxy.selector_from(server="web1", address="10.0.0.1").matches(web)
    assert not haproxy.selector_from(server="web2", address="10.0.0.1").matches(web)
    six = core.Member("app", "v6", "2001:db8::1", 80)
    assert haproxy.selector_from(address="[2001:db8:0::1]:80").matches(six)


# --------------------------------------------------------------------------
# HAProxyBackend through the core, against the fake socket
# --------------------------------------------------------------------------

def run(fake_api, state, check_mode=False, **kwargs):
    selector = kwargs.pop("selector", None) or haproxy.selector_from(kwargs.pop("server", None),
                                                                     kwargs.pop("address", None))
    backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(fake_api.path, timeout=2))
    kwargs.setdefault("wait", False)
    request = Request(state, selector, **kwargs)
    return core.run(backend, request, check_mode=check_mode)


@pytest.mark.parametrize("version", VERSIONS)
def test_drain_plans_one_write(fake, version):
    server = fake(lab_a_replies(version))
    result = run(server, "drained", server="web3", containers=["app"])
    assert result["changed"] is True
    assert server.writes == ["set server app/web3 state drain"]
    assert result["members"][0]["state_before"] == "present"


@pytest.mark.parametrize("version", VERSIONS)
def test_check_mode_writes_nothing(fake, version):
    server = fake(lab_a_replies(version))
    result = run(server, "absent", check_mode=True, server="web3", containers=["app"])
    assert result["changed"] is True and result["members"][0]["state"] == "absent"
    assert server.writes == []
    assert "show cli level" in server.commands     # the level is checked in check mode too


@pytest.mark.parametrize("version", VERSIONS)
def test_no_difference_no_write(fake, version):
    server = fake(lab_a_replies(version))
    result = run(server, "present", server="web1", containers=["app"])
    assert result["changed"] is False and server.writes == []
    assert "show cli level" not in server.commands


@pytest.mark.parametrize("version", VERSIONS)
def test_shared_server_in_every_backend(fake, version):
    server = fake(lab_a_replies(version))
    result = run(server, "drained", server="shared1")
    assert sorted(m["container"] for m in result["members"]) == ["api", "app"]
    assert sorted(server.writes) == ["set server api/shared1 state drain", "set server app/shared1 state drain"]


@pytest.mark.parametrize("version", VERSIONS)
def test_select_by_address(fake, version):
    rows = haproxy.parse_servers_state(text(version, "show_servers_state.txt"))
    web2 = [r for r in rows if r["srv_name"] == "web2"][0]
    server = fake(lab_a_replies(version))
    result = run(server, "drained", address="127.0.0.1:%d" % web2["srv_port"])
    assert [m["name"] for m in result["members"]] == ["web2"]
    assert server.writes == ["set server app/web2 state drain"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("weight,expected", [("50%", 0), (7, 7), ("100%", None), (1, None)])
def test_present_weight_planning(fake, version, weight, expected):
    server = fake(lab_a_replies(version))
    if expected == 0:
        # 50% of initial weight 1 is 0: out of rotation, so refused before any write.
        with pytest.raises(core.InvalidInputError, match="would leave it at weight 0"):
            run(server, "present", server="web1", containers=["app"], weight=weight)
        assert server.writes == []
        return
    result = run(server, "present", server="web1", containers=["app"], weight=weight)
    if expected is None:
        assert server.writes == [] and result["changed"] is False
    else:
        assert server.writes == ["set weight app/web1 %d" % expected]
        assert result["diff"]["after"]["app/web1"] == {"state": "present", "weight": expected}


@pytest.mark.parametrize("version", VERSIONS)
def test_restore_with_weight_sets_weight_before_ready(fake, version):
    server = fake(states_replies(version))
    run(server, "present", server="drain1", containers=["states"], weight=5)
    assert server.writes == ["set weight states/drain1 5", "set server states/drain1 state ready"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,state,error", [
    ("trackm1", "present", "states/maint1"), ("trackm1", "drained", "states/maint1"),
    ("trackd1", "present", "states/drain1"), ("trackm2", "present", "states/maint1"),
    ("trackd2", "present", "states/drain1"),
])
def test_inherited_bits_refused_before_any_write(fake, version, name, state, error):
    server = fake(states_replies(version))
    with pytest.raises(core.CommandError, match="inherited") as info:
        run(server, state, server=name, containers=["states"], min_active=0)
    assert error in info.value.msg
    assert server.writes == []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,state,writes", [
    ("trackd2", "drained", ["set server states/trackd2 state drain"]),     # FMAINT is ours to clear
    ("trackm1", "absent", []),                                              # already MAINT
    ("trackd1", "drained", []),                                             # already drained
    ("cfgdisabled1", "present", ["set server states/cfgdisabled1 state ready"]),
    ("cfgdisabled2", "present", ["set server states/cfgdisabled2 state ready"]),
    ("downdrain1", "drained", []),
    ("down1", "drained", ["set server states/down1 state drain"]),
    ("maint1", "drained", ["set server states/maint1 state drain"]),
])
def test_state_transitions_from_every_bit(fake, version, name, state, writes):
    server = fake(states_replies(version))
    run(server, state, server=name, containers=["states"], min_active=0)
    assert server.writes == writes


@pytest.mark.parametrize("version", VERSIONS)
def test_tracker_and_tracked_changed_together(fake, version):
    server = fake(states_replies(version))
    trackers = haproxy.ServerSelector()
    trackers.matches = lambda m: m.name in ("maint1", "trackm1")
    run(server, "present", selector=trackers, containers=["states"])
    assert sorted(server.writes) == ["set server states/maint1 state ready",
                                     "set server states/trackm1 state ready"]


@pytest.mark.parametrize("version", VERSIONS)
def test_operator_socket_refused_before_any_write(fake, version):
    server = fake(lab_a_replies(version, **{"show cli level": fixture(version, "show_cli_level_operator.txt")}))
    with pytest.raises(core.PermissionDeniedError, match="level operator.*level admin"):
        run(server, "drained", server="web3", containers=["app"])
    assert server.writes == []


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_backend_lists_the_backends(fake, version):
    server = fake(lab_a_replies(version))
    with pytest.raises(core.NotFoundError) as info:
        run(server, "drained", server="web3", containers=["nosuch"])
    assert info.value.msg.startswith("backend nosuch: not found")
    assert "app, api" in info.value.msg
    assert server.writes == []


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_server(fake, version):
    server = fake(lab_a_replies(version))
    with pytest.raises(core.NotFoundError, match="server web9: not found"):
        run(server, "drained", server="web9")
    assert server.writes == []


@pytest.mark.parametrize("version", VERSIONS)
def test_capacity_guard(fake, version):
    server = fake(lab_a_replies(version))
    with pytest.raises(core.GuardRefusedError, match="min_active=5"):
        run(server, "drained", server="web3", containers=["app"], min_active=5)
    assert server.writes == []


@pytest.mark.parametrize("version", VERSIONS)
def test_add_dynamic_server(fake, version):
    server = fake(lab_a_replies(version))
    result = run(server, "present", server="web9", address="127.0.0.1:8099", containers=["app"], weight=3)
    assert server.writes == ["add server app/web9 127.0.0.1:8099 check", "enable health app/web9",
                             "set weight app/web9 3", "set server app/web9 state ready"]
    assert result["members"][0]["state_before"] == "absent"


@pytest.mark.parametrize("kwargs,words", [
    (dict(server="web9", containers=["app"]), "give both server"),
    (dict(server="web9", address="127.0.0.1", containers=["app"]), "IP:PORT"),
    (dict(server="web9", address="127.0.0.1:80"), "not found in any backend"),
    (dict(server="web1", address="127.0.0.1:1", containers=["app"]), "exists in backend app"),
])
def test_add_needs_backend_name_and_address(fake, kwargs, words):
    server = fake(lab_a_replies("3.0"))
    with pytest.raises(core.LBError, match=words):
        run(server, "present", **kwargs)
    assert server.writes == []


@pytest.mark.parametrize("version", VERSIONS)
def test_add_refused_by_static_backend(fake, version):
    server = fake(lab_a_replies(version, **{"add server app/web9 127.0.0.1:8099 check":
                                            fixture(version, "add_server_static_backend.txt")}))
    with pytest.raises(core.CommandError, match="dynamic balance algorithm") as info:
        run(server, "present", server="web9", address="127.0.0.1:8099", containers=["app"])
    assert info.value.result["changed"] is False


@pytest.mark.parametrize("version", VERSIONS)
def test_force_uses_shutdown_sessions(fake, version):
    server = fake(lab_a_replies(version))
    backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(server.path))
    members = backend.read(["app"])
    backend.force([m for m in members if m.name == "web2"])
    assert server.writes == ["shutdown sessions server app/web2"]


@pytest.mark.parametrize("version", VERSIONS)
def test_poll_narrows_to_the_backends_in_scope(fake, version):
    # The captured replies never change, so web3 never reads DRAIN: the core
    # puts it back a few times, then says something keeps changing it.
    server = fake(lab_a_replies(version))
    with pytest.raises(core.StateLostError, match="keeps changing it"):
        run(server, "drained", server="web3", wait=True, wait_timeout=5)
    polls = [c for c in server.commands if c.startswith(("show servers", "show stat"))]
    assert polls[0] == "show servers state; show stat -1 4 -1"
    assert polls[-1] == "show servers state app; show stat app 4 -1"


def test_haproxy_dies_mid_wait(fake):
    server = fake(lab_a_replies("2.6"))
    backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(server.path, timeout=1))
    backend.read(["app"])
    server.close()
    with pytest.raises(core.UnreachableError, match="stopped answering while waiting"):
        backend.poll(["app"])


# --------------------------------------------------------------------------
# The stats page, against a fake HTTP server replaying captured heads
# --------------------------------------------------------------------------

def http_reply(version, name):
    """(status, headers, body) of a captured HTTP reply."""
    raw = text(version, name)
    head, _sep, body = raw.partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if line]
    return status, headers, body.encode()


class FakeStatsPage(object):
    def __init__(self, get, post):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, reply):
                status, headers, body = reply
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                outer.requests.append(("GET", self.path, self.headers.get("Authorization"), None))
                self._reply(get)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                outer.requests.append(("POST", self.path, self.headers.get("Authorization"), body))
                self._reply(post)

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/stats" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stats_page():
    pages = []

    def start(version, post="stats_page_post_done.txt", get=None):
        get_reply = (200, [("Content-Type", "text/plain")], fixture(version, "stats_page_csv.txt")) \
            if get is None else http_reply(version, get)
        page = FakeStatsPage(get_reply, http_reply(version, post))
        pages.append(page)
        return page
    yield start
    for page in pages:
        page.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_stats_page_drain_posts_the_admin_form(stats_page, version):
    page = stats_page(version)
    backend = haproxy.HAProxyBackend(haproxy_stats.StatsPage(page.url, "admin", "secret"))
    request = Request("drained", haproxy.selector_from("web3"), containers=["app"], wait=False)
    result = core.run(backend, request)
    assert result["changed"] is True
    posts = [r for r in page.requests if r[0] == "POST"]
    assert posts == [("POST", "/stats", "Basic YWRtaW46c2VjcmV0", "s=web3&action=drain&b=app")]
    assert page.requests[0][1] == "/stats;csv;norefresh"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("post,error,words", [
    ("stats_page_post_deny.txt", core.PermissionDeniedError, "stats admin"),
    ("stats_page_post_errp.txt", core.NotFoundError, "st=ERRP"),
    ("stats_page_post_part.txt", core.NotFoundError, "st=PART"),
    ("stats_page_post_none.txt", core.CommandError, "st=NONE"),
    ("stats_page_post_unauthorized.txt", core.AuthRefusedError, "stats_password"),
])
def test_stats_page_result_codes(stats_page, version, post, error, words):
    page = stats_page(version, post=post)
    client = haproxy_stats.StatsPage(page.url, "admin", "secret")
    with pytest.raises(error, match=words):
        client.set_state("app", "web3", "drained")


@pytest.mark.parametrize("version", VERSIONS)
def test_stats_page_wrong_password(stats_page, version):
    page = stats_page(version, get="stats_page_post_wrong_password.txt")
    with pytest.raises(core.AuthRefusedError, match="user admin was refused"):
        haproxy_stats.StatsPage(page.url, "admin", "wrong").servers()


@pytest.mark.parametrize("version", VERSIONS)
def test_stats_page_without_credentials(stats_page, version):
    page = stats_page(version, get="stats_page_csv_unauthorized.txt")
    with pytest.raises(core.AuthRefusedError, match="set stats_user"):
        haproxy_stats.StatsPage(page.url).servers()


@pytest.mark.parametrize("version", VERSIONS)
def test_stats_page_unknown_backend(stats_page, version):
    page = stats_page(version)
    with pytest.raises(core.NotFoundError, match="backend nosuch: not found"):
        haproxy_stats.StatsPage(page.url, "admin", "secret").servers(["nosuch"])


def test_stats_page_cannot_set_weight_or_select_by_address():
    backend = haproxy.HAProxyBackend(haproxy_stats.StatsPage("http://127.0.0.1:1/stats", "a", "b"))
    with pytest.raises(core.InvalidInputError, match="cannot change weights"):
        core.run(backend, Request("present", haproxy.selector_from("web1"), weight=5))
    with pytest.raises(core.InvalidInputError, match="does not show server addresses"):
        core.run(backend, Request("drained", haproxy.selector_from(address="10.0.0.1")))


def test_stats_page_unreachable():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(core.UnreachableError, match="cannot connect"):
        haproxy_stats.StatsPage("http://127.0.0.1:%d/stats" % port, timeout=1).servers()


@pytest.mark.parametrize("url", ["ftp://lb/stats", "lb:8404/stats", "http:///stats"])
def test_stats_page_bad_url(url):
    with pytest.raises(core.InvalidInputError):
        haproxy_stats.StatsPage(url)


def test_transport_choice():
    assert isinstance(haproxy.transport_from(), haproxy.RuntimeAPI)
    assert haproxy.transport_from().target == haproxy.DEFAULT_SOCKET
    assert isinstance(haproxy.transport_from(stats_url="http://lb/stats"), haproxy_stats.StatsPage)
    assert isinstance(haproxy.transport_from(socket="/x.sock", stats_url="http://lb/stats"), haproxy.RuntimeAPI)


# --------------------------------------------------------------------------
# Production HAProxy: one read per backend, the master CLI and old workers
# (lab C of the fixtures: master-worker, a reload holding a request on
# app/web2 in the old worker, an agent check on app/web3)
# --------------------------------------------------------------------------

def production_pids(version):
    procs = haproxy.parse_show_proc(text(version, "master_show_proc_old_worker.txt"))
    current = [p["pid"] for p in procs if p["role"] == "current"][0]
    old = [p["pid"] for p in procs if p["role"] == "old"][0]
    return current, old


@pytest.mark.parametrize("version", VERSIONS)
def test_show_proc_before_and_after_a_reload(version):
    before = haproxy.parse_show_proc(text(version, "master_show_proc.txt"))
    assert [(p["type"], p["role"], p["reloads"]) for p in before] == [
        ("master", "master", 0), ("worker", "current", 0)]
    after = haproxy.parse_show_proc(text(version, "master_show_proc_old_worker.txt"))
    assert [(p["type"], p["role"]) for p in after] == [
        ("master", "master"), ("worker", "current"), ("worker", "old")]
    assert after[0]["reloads"] == 1 and after[2]["reloads"] == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_show_proc_refuses_a_stats_socket_reply(version):
    with pytest.raises(core.CommandError, match="master_socket"):
        haproxy.parse_show_proc(text(version, "show_info.txt"))


@pytest.mark.parametrize("version", VERSIONS)
def test_show_sess_finds_the_old_workers_stream(version):
    streams = haproxy.parse_show_sess(text(version, "master_old_worker_show_sess.txt"))
    held = [s for s in streams if s[1:] == ("app", "web2")]
    assert len(held) == 1 and held[0][0].startswith("0x")
    assert all(s[1:] != ("app", "web3") for s in streams)      # the master's own CLI stream is listed too


@pytest.mark.parametrize("version", VERSIONS)
def test_agent_state_and_check_rise_fall(version):
    enabled = haproxy.server_rows(haproxy.parse_servers_state(text(version, "show_servers_state_agent.txt")),
                                  haproxy.parse_show_stat(text(version, "show_stat_agent.txt")))
    disabled = haproxy.server_rows(
        haproxy.parse_servers_state(text(version, "show_servers_state_agent_disabled.txt")),
        haproxy.parse_show_stat(text(version, "show_stat_agent.txt")))
    by_name = dict((r["name"], r) for r in enabled)
    assert (by_name["web3"]["agent_check"], by_name["web3"]["agent_enabled"]) == (True, True)
    assert by_name["web3"]["agent_status"] is not None
    assert (by_name["web1"]["agent_check"], by_name["web1"]["agent_status"]) == (False, None)
    assert (by_name["web1"]["check_rise"], by_name["web1"]["check_fall"]) == (1, 2)
    assert dict((r["name"], r["agent_enabled"]) for r in disabled)["web3"] is False
    assert fixture(version, "agent_disable_ok.txt") == b"\n\n"
    # HAProxy accepts `disable agent` on a server without one: the module never sends it there.
    assert fixture(version, "err_agent_not_configured.txt") == b"\n\n"


@pytest.mark.parametrize("version", VERSIONS)
def test_state_and_stat_in_one_reply(fake, version):
    server = fake({"show servers state app; show stat app 4 -1": fixture(version, "state_and_stat_app.txt"),
                   "show servers state nosuch; show stat nosuch 4 -1": fixture(version, "state_and_stat_unknown.txt"),
                   "show backend": fixture(version, "show_backend.txt")})
    api = haproxy.RuntimeAPI(server.path)
    records = api.servers(["app"])
    assert [r["name"] for r in records] == ["web1", "web2", "web3"]
    assert all(r["status"] and r["total_sessions"] is not None for r in records)
    with pytest.raises(core.NotFoundError, match="backend nosuch: not found"):
        api.servers(["nosuch"])


@pytest.mark.parametrize("version", VERSIONS)
def test_traffic_counters_from_show_stat(fake, version):
    """Each line's show stat has the columns the traffic counters come from."""
    server = fake({"show servers state app; show stat app 4 -1": fixture(version, "state_and_stat_app.txt"),
                   "show backend": fixture(version, "show_backend.txt")})
    for record in haproxy.RuntimeAPI(server.path).servers(["app"]):
        assert record["responses"] == {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "other": 0}
        assert [record[key] for key in haproxy.TRAFFIC_COLUMNS] == [0] * len(haproxy.TRAFFIC_COLUMNS)


def test_traffic_counters_by_name_and_none_without_http():
    row = dict(req_tot="120", econ="2", eresp="1", wretr="3", wredis="1", rtime="17", hrsp_1xx="0",
               hrsp_2xx="100", hrsp_3xx="5", hrsp_4xx="3", hrsp_5xx="12", hrsp_other="0")
    assert haproxy.traffic_counters(row) == dict(
        requests=120, connection_errors=2, response_errors=1, retries=3, redispatches=1, response_time_ms=17,
        responses={"1xx": 0, "2xx": 100, "3xx": 5, "4xx": 3, "5xx": 12, "other": 0})
    # A TCP-mode backend leaves the HTTP columns empty.
    tcp = dict(row, req_tot="", hrsp_1xx="", hrsp_2xx="", hrsp_3xx="", hrsp_4xx="", hrsp_5xx="", hrsp_other="")
    counters = haproxy.traffic_counters(tcp)
    assert counters["requests"] is None and counters["responses"] is None and counters["connection_errors"] == 2


def master_replies(version, **extra):
    current, old = production_pids(version)
    replies = {
        "show proc": fixture(version, "master_show_proc_old_worker.txt"),
        "@!%d show stat app 4 -1" % old: fixture(version, "master_old_worker_show_stat_app.txt"),
        "@!%d show stat api 4 -1" % old: fixture(version, "master_old_worker_show_stat_unknown.txt"),
        "@!%d show sess" % old: fixture(version, "master_old_worker_show_sess.txt"),
        "@!%d shutdown sessions server app/web2" % old: fixture(version, "master_old_worker_shutdown_sessions.txt"),
    }
    replies.update(extra)
    return replies


def production_backend(fake, version, master_extra=None, info_pid=None, **runtime_extra):
    current, old = production_pids(version)
    runtime = fake(dict({
        "show servers state app; show stat app 4 -1": fixture(version, "state_and_stat_app.txt"),
        "show info": ("Name: HAProxy\nPid: %d\nUptime_sec: 5\n\n" % (info_pid or current)).encode(),
        "show cli level": b"\n[6]: admin\n\n"}, **runtime_extra))
    master = fake(master_replies(version, **(master_extra or {})))
    backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(runtime.path, timeout=2),
                                     master=haproxy.MasterCLI(master.path, timeout=2))
    return backend, runtime, master


@pytest.mark.parametrize("version", VERSIONS)
def test_old_workers_sessions_are_counted_per_process(fake, version):
    current, old = production_pids(version)
    backend, _runtime, master = production_backend(fake, version)
    members = dict((m.name, m) for m in backend.read(["app"]))
    web2 = members["web2"]
    assert web2.details["workers"] == [dict(pid=current, role="current", sessions=0),
                                       dict(pid=old, role="old", sessions=1)]
    assert web2.sessions == 1 and web2.details["current_sessions"] == 0
    assert [w["role"] for w in members["web1"].details["workers"]] == ["current", "old"]
    assert master.commands == ["show proc", "@!%d show stat app 4 -1" % old]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_backend_unknown_to_the_old_worker_and_a_worker_gone_count_nothing(fake, version):
    current, old = production_pids(version)
    backend, _runtime, _master = production_backend(
        fake, version, master_extra={"@!%d show stat app 4 -1" % old: fixture(version, "master_unknown_pid.txt")})
    web2 = [m for m in backend.read(["app"]) if m.name == "web2"][0]
    assert web2.details["workers"] == [dict(pid=current, role="current", sessions=0)]
    assert haproxy.MasterCLI(_master.path).worker(old, "show stat api 4 -1").startswith("No such proxy")


def test_master_socket_of_another_haproxy_is_refused(fake):
    backend, _runtime, _master = production_backend(fake, "3.2", info_pid=1)
    with pytest.raises(core.InvalidInputError, match="point master_socket and socket at the same HAProxy"):
        backend.read(["app"])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_stats_socket_given_as_master_socket(fake, version):
    server = fake({"show proc": fixture(version, "master_unknown_command.txt")})
    with pytest.raises(core.CommandError, match="not at a stats socket"):
        haproxy.MasterCLI(server.path).processes()
    server = fake({"show proc": fixture(version, "show_info.txt")})
    with pytest.raises(core.CommandError, match="point master_socket at the socket of haproxy's -S"):
        haproxy.MasterCLI(server.path).processes()


@pytest.mark.parametrize("version", VERSIONS)
def test_force_ends_the_old_workers_streams_one_by_one(fake, version):
    current, old = production_pids(version)
    backend, runtime, master = production_backend(fake, version)
    web2 = [m for m in backend.read(["app"]) if m.name == "web2"][0]
    stream = [s for s, b, n in haproxy.parse_show_sess(text(version, "master_old_worker_show_sess.txt"))
              if (b, n) == ("app", "web2")][0]
    note = backend.force([web2])
    assert runtime.writes[-1] == "shutdown sessions server app/web2"
    assert master.commands[-2:] == ["@!%d show sess" % old, "@!%d shutdown session %s" % (old, stream)]
    assert note == ("'shutdown sessions server' sent for app/web2; 'shutdown session' sent for the sessions old "
                    "workers held (1 in old worker %d)" % old)


def test_master_cli_connection_errors_name_the_option(tmp_path):
    missing = haproxy.MasterCLI(str(tmp_path / "master.sock"), timeout=1, sleep=lambda s: None)
    with pytest.raises(core.UnreachableError, match=r"^master_socket .*master.sock: no such socket file; check the "
                       r"path against the -S option of haproxy .*\(set master_socket or HAPROXY_MASTER_SOCKET\)$"):
        missing.processes()


# --------------------------------------------------------------------------
# HAProxy's configuration and the server-state-file
# --------------------------------------------------------------------------

CONFIG = """
global
    stats socket /run/haproxy/admin.sock level admin   # comment
    server-state-base /var/lib/haproxy
    server-state-file "state"

defaults
    mode http
    load-server-state-from-file global

backend app
    server web1 10.0.0.1:80 check

defaults tcp
    mode tcp

backend db
    server db1 10.0.0.2:5432

backend own from named
    load-server-state-from-file local
    server-state-file-name /srv/own.state

defaults named
    load-server-state-from-file local

listen api from named
    server api1 10.0.0.3:80

backend off
    load-server-state-from-file none
"""


def parsed(text_=CONFIG):
    return haproxy_files.ServerStateConfig.parse([("/etc/haproxy/haproxy.cfg", text_)])


@pytest.mark.parametrize("backend,path,why", [
    ("app", "/var/lib/haproxy/state", None),                     # from the first defaults section
    ("db", None, "backend db has no load-server-state-from-file"),    # a new defaults section resets it
    ("own", "/srv/own.state", None),                             # `from` a section named later: not found, own line
    ("api", "/var/lib/haproxy/api", None),                       # local: the backend's name in the base
    ("off", None, "backend off has no load-server-state-from-file"),
    ("nosuch", None, "backend nosuch is not in /etc/haproxy/haproxy.cfg"),
])
def test_which_file_each_backend_loads_on_a_reload(backend, path, why):
    assert parsed().loaded_file(backend) == (path, why)


def test_relative_state_file_without_a_base_is_not_guessed():
    config = parsed("global\n server-state-file state\ndefaults\n load-server-state-from-file global\nbackend b\n")
    path, why = config.loaded_file("b")
    assert path is None and "relative" in why


def test_config_directory_reads_cfg_files_in_order(tmp_path):
    (tmp_path / "20-backends.cfg").write_text("backend app\n")
    (tmp_path / "10-global.cfg").write_text("global\n server-state-file /s\ndefaults\n load-server-state-from-file global\n")
    (tmp_path / "notes.txt").write_text("backend ignored\n")
    config = haproxy_files.ServerStateConfig.parse(haproxy_files.config_files([str(tmp_path)]))
    assert config.files == [str(tmp_path / "10-global.cfg"), str(tmp_path / "20-backends.cfg")]
    assert config.loaded_file("app") == ("/s", None)
    assert "ignored" not in config.backends


@pytest.mark.parametrize("argv,paths", [
    (["/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/haproxy.cfg", "-p", "/run/haproxy.pid", "-S",
      "/run/haproxy-master.sock"], ["/etc/haproxy/haproxy.cfg"]),
    (["/lib/ld-linux-x86-64.so.2", "--library-path", "/x/lib", "/x/usr/sbin/haproxy", "-W", "-f", "/a.cfg",
      "-f", "/conf.d", "-x", "sockpair@5", "-sf", "1234"], ["/a.cfg", "/conf.d"]),
    (["haproxy", "-C", "/etc/haproxy", "-f", "haproxy.cfg"], ["/etc/haproxy/haproxy.cfg"]),
    (["haproxy", "-db", "--", "/one.cfg", "/two.cfg"], ["/one.cfg", "/two.cfg"]),
    (["haproxy", "-f", "relative.cfg"], None),
    (["/usr/bin/python3", "-f", "/etc/haproxy/haproxy.cfg"], None),
])
def test_config_paths_from_a_command_line(argv, paths):
    assert haproxy_files.config_paths_from_argv(argv) == paths


def test_running_config_paths_of_a_process_that_is_not_haproxy():
    assert haproxy_files.running_config_paths(os.getpid()) is None
    assert haproxy_files.running_config_paths(2 ** 30) is None


@pytest.mark.parametrize("version", VERSIONS)
def test_save_writes_what_haproxy_loads_atomically(fake, version, tmp_path):
    state = fixture(version, "show_servers_state.txt")
    server = fake({"show servers state": state, "show servers state app": fixture(version,
                                                                                  "show_servers_state_app.txt")})
    api = haproxy.RuntimeAPI(server.path)
    target = tmp_path / "server-state"
    target.write_text("old\n")
    os.chmod(str(target), 0o600)
    haproxy_files.save_server_states(api, {str(target): None, str(tmp_path / "app"): "app"})
    assert target.read_bytes() == state and os.stat(str(target)).st_mode & 0o777 == 0o600
    assert (tmp_path / "app").read_bytes() == fixture(version, "show_servers_state_app.txt")
    assert os.stat(str(tmp_path / "app")).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "server-state"]     # no temporary left


def state_backend(fake, tmp_path, config_text, **kwargs):
    server = fake(lab_a_replies("2.6"))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(config_text)
    backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(server.path, timeout=2), config=str(cfg),
                                     save_state=True, **kwargs)
    return backend, server


def test_save_state_after_each_change(fake, tmp_path):
    backend, server = state_backend(
        fake, tmp_path, "global\n server-state-file %s/state\ndefaults\n load-server-state-from-file global\n"
                        "backend app\nbackend api\n" % tmp_path)
    core.run(backend, Request("drained", haproxy.selector_from("web3"), containers=["app"], wait=False))
    write = server.commands.index("set server app/web3 state drain")
    assert server.commands[write + 1] == "show servers state"          # saved at once
    assert (tmp_path / "state").read_bytes() == fixture("2.6", "show_servers_state.txt")


def test_save_state_without_a_state_file_fails_before_writing(fake, tmp_path):
    backend, server = state_backend(fake, tmp_path, "global\ndefaults\nbackend app\n")
    with pytest.raises(core.InvalidInputError, match="backend app has no load-server-state-from-file, so a reload "
                                                     "would not load what is saved"):
        core.run(backend, Request("drained", haproxy.selector_from("web3"), containers=["app"], wait=False))
    assert server.writes == []


def test_save_state_into_a_missing_directory_fails_before_writing(fake, tmp_path):
    backend, server = state_backend(fake, tmp_path, "", server_state_file=str(tmp_path / "no" / "state"))
    with pytest.raises(core.CommandError, match="its directory does not exist"):
        core.run(backend, Request("drained", haproxy.selector_from("web3"), containers=["app"], wait=False),
                 check_mode=True)
    assert server.writes == []


def test_save_state_needs_the_runtime_api():
    backend = haproxy.HAProxyBackend(haproxy_stats.StatsPage("http://127.0.0.1:1/stats"), save_state=True)
    with pytest.raises(core.InvalidInputError, match="the stats page cannot read 'show servers state'"):
        core.run(backend, Request("drained", haproxy.selector_from("web3")))


def test_server_state_report(fake, tmp_path):
    backend, _server = state_backend(
        fake, tmp_path, "global\n server-state-file /var/lib/haproxy/state\ndefaults\n"
                        " load-server-state-from-file global\nbackend app\nbackend api\n load-server-state-from-file "
                        "none\n")
    backend.read(["app", "api"])
    assert backend.server_state_report(["app", "api"]) == dict(
        config=[str(tmp_path / "haproxy.cfg")], file="/var/lib/haproxy/state",
        load={"api": None, "app": "/var/lib/haproxy/state"}, kept_on_reload=False,
        reason="backend api has no load-server-state-from-file")
    missing = haproxy.HAProxyBackend(backend.transport, config=str(tmp_path / "nosuch.cfg"))
    report = missing.server_state_report(["app"])
    assert report["kept_on_reload"] is None and "cannot be read (No such file or directory)" in report["reason"]
    # A stats page (or TCP socket) may be another host's: no local file is guessed.
    remote = haproxy.HAProxyBackend(ScriptedTransport())
    remote.transport.info = lambda: {}
    report = remote.server_state_report(["app"])
    assert report["config"] == [] and report["kept_on_reload"] is None
    assert report["reason"].startswith("HAProxy's configuration is not known where the module runs")


# --------------------------------------------------------------------------
# Agent checks
# --------------------------------------------------------------------------

READ_APP = "show servers state app; show stat app 4 -1"


def agent_backend(fake, version, tmp_path, disabled=False):
    state = "show_servers_state_agent_disabled.txt" if disabled else "show_servers_state_agent.txt"
    server = fake({READ_APP: fixture(version, state) + fixture(version, "show_stat_agent.txt"),
                   "show cli level": b"\n[6]: admin\n\n"})
    memory = haproxy_files.AgentMemory(str(tmp_path / "lib" / "agents.json"))
    return haproxy.HAProxyBackend(haproxy.RuntimeAPI(server.path, timeout=2), agent_memory=memory), server, memory


def drained_now(server, version, agent_enabled):
    """What the fake answers once web3 is drained (and its agent as given)."""
    state = "show_servers_state_agent.txt" if agent_enabled else "show_servers_state_agent_disabled.txt"
    server.replies[READ_APP] = (fixture(version, state).replace(b" 2 0 10 10 ", b" 2 8 10 10 ")
                                + fixture(version, "show_stat_agent.txt"))


def again(backend, server):
    """A new run (a new backend object) against the same socket and memory."""
    return haproxy.HAProxyBackend(haproxy.RuntimeAPI(server.path, timeout=2), agent_memory=backend.agents)


@pytest.mark.parametrize("version", VERSIONS)
def test_drain_disables_the_agent_first_and_present_enables_it_again(fake, version, tmp_path):
    backend, server, memory = agent_backend(fake, version, tmp_path)
    core.run(backend, Request("drained", haproxy.selector_from("web3"), containers=["app"], wait=False))
    assert server.writes == ["disable agent app/web3", "set server app/web3 state drain"]
    key = "%s app/web3" % os.path.realpath(server.path)
    assert memory.holds(key)
    drained_now(server, version, agent_enabled=False)
    del server.lines[:]
    result = core.run(again(backend, server), Request("present", haproxy.selector_from("web3"),
                                                      containers=["app"], wait=False))
    assert server.writes == ["set server app/web3 state ready", "enable agent app/web3"]
    assert not memory.holds(key) and not result["warnings"]


@pytest.mark.parametrize("version", VERSIONS)
def test_an_agent_disabled_by_someone_else_is_left_alone(fake, version, tmp_path):
    backend, server, memory = agent_backend(fake, version, tmp_path, disabled=True)
    core.run(backend, Request("drained", haproxy.selector_from("web3"), containers=["app"], wait=False))
    assert server.writes == ["set server app/web3 state drain"]
    assert not os.path.exists(memory.path)
    drained_now(server, version, agent_enabled=False)
    del server.lines[:]
    result = core.run(again(backend, server), Request("present", haproxy.selector_from("web3"),
                                                      containers=["app"], wait=False))
    assert server.writes == ["set server app/web3 state ready"]
    assert any("its agent check is disabled, and not by gentle.lb" in w for w in result["warnings"])


def test_agent_memory_that_cannot_be_written_fails_before_any_write(fake, tmp_path):
    backend, server, _memory = agent_backend(fake, "2.6", tmp_path)
    (tmp_path / "file").write_text("")
    backend.agents = haproxy_files.AgentMemory(str(tmp_path / "file" / "agents.json"))
    with pytest.raises(core.CommandError, match="^agent_memory .*: its directory cannot be created"):
        core.run(backend, Request("drained", haproxy.selector_from("web3"), containers=["app"], wait=False))
    assert server.writes == []


def test_agent_memory_survives_a_damaged_file(tmp_path):
    memory = haproxy_files.AgentMemory(str(tmp_path / "agents.json"), clock=lambda: 1700000000)
    (tmp_path / "agents.json").write_text("{not json")
    assert not memory.holds("k")
    memory.remember(["k", "j"])
    assert json.loads((tmp_path / "agents.json").read_text()) == {
        "version": 1, "disabled": {"j": {"at": 1700000000}, "k": {"at": 1700000000}}}
    memory.forget("k")
    assert memory.holds("j") and not memory.holds("k")


# --------------------------------------------------------------------------
# Persistence, the ladder, the health gate, reloads seen during the wait
# (the backend over a scripted transport)
# --------------------------------------------------------------------------

class ScriptedTransport(object):
    """Serves server records that a test edits between polls; records writes."""

    label = "socket /scripted.sock"
    can_set_weight = can_add = shows_addresses = True

    def __init__(self, **web3):
        record = dict(backend="app", name="web3", address="127.0.0.1", port=8080, fqdn=None, admin_state=0,
                      state="present", weight=1, initial_weight=1, sessions=0, queued=0, status="UP",
                      health="up", check_status="L7OK", checked=True, backup=False, tracks=None,
                      operational_state="running", agent_check=False, agent_enabled=False, agent_status=None,
                      check_rise=1, check_fall=2, total_sessions=10, balanced_sessions=10)
        record.update(web3)
        other = dict(record, name="web1", total_sessions=0, balanced_sessions=0)
        self.records = [record, other]
        self.writes = []
        self.pid = "100"

    def web3(self, **changes):
        self.records[0].update(changes)

    def servers(self, backends=None):
        return [dict(r) for r in self.records]

    def info(self):
        return {"Pid": self.pid, "Uptime_sec": "5"}

    def level(self):
        return "admin"

    def identity_key(self):
        return "/scripted.sock"

    def set_state(self, backend, server, state):
        self.writes.append("%s/%s %s" % (backend, server, state))
        admin = {"present": 0, "drained": haproxy.FDRAIN, "absent": haproxy.FMAINT}[state]
        status = {"present": "UP", "drained": "DRAIN", "absent": "MAINT"}[state]
        self.web3(admin_state=admin, state=state, status=status)

    def shutdown_sessions(self, backend, server):
        self.writes.append("shutdown %s/%s" % (backend, server))


class FakeClock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_persistent_arrivals_and_the_grace_period(tmp_path):
    transport = ScriptedTransport(sessions=1)
    clock = FakeClock()
    backend = haproxy.HAProxyBackend(transport, clock=clock)

    def sleep(seconds):
        clock.sleep(seconds)
        # A sticky client keeps coming: stot grows, lbtot does not, a session stays open
        # until the server is in MAINT, where the clients go elsewhere.
        record = transport.records[0]
        if record["state"] != "absent":
            transport.web3(total_sessions=record["total_sessions"] + 1)
        else:
            transport.web3(sessions=0)
    request = Request("drained", haproxy.selector_from("web3"), containers=["app"], wait_timeout=10,
                      options=dict(persistence_grace=2.0))
    result = core.run(backend, request, clock=clock, sleep=sleep)
    entry = result["members"][0]
    assert transport.writes == ["app/web3 drained", "app/web3 absent"]
    assert (entry["state"], entry["status"], entry["drain_ended_by"]) == ("drained", "MAINT", "maintenance")
    assert entry["persistent_arrivals"] >= 5
    assert 2.0 <= result["waited"] < 3.0 and result["reasserted"] == 0
    assert not result["warnings"]


def test_the_ladder_starts_over_when_someone_undoes_the_maintenance():
    transport = ScriptedTransport(sessions=1)
    clock = FakeClock()
    undone = []

    def sleep(seconds):
        clock.sleep(seconds)
        record = transport.records[0]
        if record["state"] == "absent" and not undone:
            undone.append(clock.now)            # an operator: "state ready"
            transport.web3(admin_state=0, state="present", status="UP")
        elif record["state"] == "absent":
            transport.web3(sessions=0)
    request = Request("drained", haproxy.selector_from("web3"), containers=["app"], wait_timeout=10,
                      options=dict(persistence_grace=1.0))
    result = core.run(haproxy.HAProxyBackend(transport, clock=clock), request, clock=clock, sleep=sleep)
    assert transport.writes == ["app/web3 drained", "app/web3 absent", "app/web3 drained", "app/web3 absent"]
    assert result["reasserted"] == 1
    assert result["members"][0]["drain_ended_by"] == "maintenance"


def test_persistence_without_a_grace_period_is_warned_about():
    transport = ScriptedTransport(sessions=1)
    clock = FakeClock()
    backend = haproxy.HAProxyBackend(transport, clock=clock)

    def sleep(seconds):
        clock.sleep(seconds)
        transport.web3(total_sessions=transport.records[0]["total_sessions"] + 1)
    request = Request("drained", haproxy.selector_from("web3"), containers=["app"], wait_timeout=1,
                      on_timeout="continue")
    result = core.run(backend, request, clock=clock, sleep=sleep)
    entry = result["members"][0]
    assert entry["drain_ended_by"] is None and entry["persistent_arrivals"] > 0
    assert any("reached it through persistence" in w and "set persistence_grace" in w for w in result["warnings"])


def test_persistent_arrivals_carry_over_a_counter_restart():
    backend = haproxy.HAProxyBackend(ScriptedTransport())
    backend._request = Request("drained", haproxy.selector_from("web3"))
    record = dict(ScriptedTransport().records[0], total_sessions=100, balanced_sessions=90)
    assert backend._persistent_arrivals(("app", "web3"), record) == 0
    assert backend._persistent_arrivals(("app", "web3"), dict(record, total_sessions=104)) == 4
    # A reload: the new process counts from 0.
    assert backend._persistent_arrivals(("app", "web3"), dict(record, total_sessions=3, balanced_sessions=1)) == 6


def test_persistence_grace_must_be_positive():
    backend = haproxy.HAProxyBackend(ScriptedTransport())
    with pytest.raises(core.InvalidInputError, match="persistence_grace 0: must be above 0 seconds"):
        core.run(backend, Request("drained", haproxy.selector_from("web3"), options=dict(persistence_grace=0)))


@pytest.mark.parametrize("fall,warned", [(1, True), (2, False)])
def test_present_from_maintenance_says_when_fall_1_hides_the_check(fall, warned):
    transport = ScriptedTransport(admin_state=haproxy.FMAINT, state="absent", status="MAINT", health="down",
                                  check_rise=None, check_fall=None)     # show stat hides both in MAINT
    clock = FakeClock()

    def sleep(seconds):
        clock.sleep(seconds)
        transport.web3(check_rise=1, check_fall=fall, health="up")
    result = core.run(haproxy.HAProxyBackend(transport, clock=clock),
                      Request("present", haproxy.selector_from("web3"), containers=["app"]), clock=clock,
                      sleep=sleep)
    assert any("fall 1" in w and "real health gate" in w for w in result["warnings"]) is warned


def test_a_reload_during_the_wait_without_master_socket_is_warned_about():
    transport = ScriptedTransport(sessions=1, admin_state=haproxy.FDRAIN, state="drained", status="DRAIN")
    clock = FakeClock()

    def sleep(seconds):
        clock.sleep(seconds)
        transport.pid = "200"                   # the new process shows no session
        transport.web3(sessions=0)
    result = core.run(haproxy.HAProxyBackend(transport, clock=clock),
                      Request("drained", haproxy.selector_from("web3"), containers=["app"]), clock=clock,
                      sleep=sleep)
    assert any(w.startswith("HAProxy was reloaded or restarted during the wait (pid 100 -> 200)")
               and "set master_socket" in w for w in result["warnings"]), result["warnings"]
