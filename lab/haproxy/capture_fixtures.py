#!/usr/bin/env python3
"""Capture HAProxy runtime API and stats page replies from the real binaries.

Writes the exact bytes to tests/unit/fixtures/haproxy/<version>/ for the
parser unit tests (see tests/unit/fixtures/haproxy/README.md for the list).

    python3 lab/haproxy/capture_fixtures.py              # 2.6, 3.0 and 3.2
    python3 lab/haproxy/capture_fixtures.py --version 3.0
    python3 lab/haproxy/capture_fixtures.py --only production   # lab C only

Re-runnable: every file is rewritten.  Ports, pids, times and counters differ
from run to run; shapes, columns, flags and messages do not.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from base64 import b64encode
from pathlib import Path
import socket

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lab.haproxy_lab import (  # noqa: E402  (path set up above)
    DEFAULT_BACKENDS, FAST_CHECKS, HAProxyLab, STATS_PASSWORD, STATS_USER, wait_until)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "unit" / "fixtures" / "haproxy"

# Errors come back as plain text; modules send this first on the same
# connection, so the replies below start with its own (empty) reply "\n".
SEV = "set severity-output number; "

# Lab A: the default topology plus a backend with a static algorithm.
TOPOLOGY = dict(DEFAULT_BACKENDS, static={
    "balance": "source", "servers": ["s1 check", "s2 check"]})

# Lab B: one server per admin state we can produce.
STATES = {
    "states": {
        "balance": "roundrobin",
        "httpchk": "GET /health",
        "default_server": FAST_CHECKS,
        "servers": [
            "ready1 check",
            "drain1 check",                   # state drain -> 0x08 FDRAIN
            "maint1 check",                   # state maint -> 0x01 FMAINT
            "drainthenmaint1 check",          # drain, then state maint -> 0x01
            "drainthendisable1 check",        # drain, then disable server -> 0x01
            "trackm1 track states/maint1",    # -> 0x02 IMAINT (inherited)
            "trackd1 track states/drain1",    # -> 0x10 IDRAIN (inherited)
            "trackm2 track states/maint1",    # + state drain -> 0x0a IMAINT|FDRAIN
            "trackd2 track states/drain1",    # + state maint -> 0x11 FMAINT|IDRAIN
            "cfgdisabled1 check disabled",    # -> 0x05 CMAINT|FMAINT
            "cfgdisabled2 check disabled",    # + state drain -> 0x0c CMAINT|FDRAIN
            "downdrain1 check",               # health fails, then drain: DOWN + 0x08
            "down1 check",                    # health fails: DOWN, admin 0
            "weight0 check",                  # set weight 0: admin 0, uweight 0
            "nocheck1",                       # no health check
        ],
    },
}


class Capture:
    """Runs commands against one lab and saves the replies."""

    def __init__(self, lab: HAProxyLab, outdir: Path):
        self.lab = lab
        self.outdir = outdir
        self.notes: list[str] = []

    def save(self, name: str, data: bytes) -> bytes:
        (self.outdir / name).write_bytes(data)
        return data

    def cli(self, name: str, command: str, sock: str | None = None) -> bytes:
        return self.save(name, self.lab.send_raw(command, sock))

    def cmd(self, command: str, sock: str | None = None) -> str:
        """A command whose reply is not kept (setup steps)."""
        return self.lab.send(command, sock)

    def http(self, name: str, port: int, method: str, path: str,
             fields=None, auth=(STATS_USER, STATS_PASSWORD)) -> bytes:
        return self.save(name, lf(raw_http(port, method, path, fields, auth)))

    def csv(self, name: str, port: int):
        """The stats page CSV: body (de-chunked) in name, head in *_head.txt."""
        reply = raw_http(port, "GET", "/stats;csv")
        head, _, body = reply.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in head.lower():
            body = dechunk(body)
        self.save(name.replace(".txt", "_head.txt"), lf(head + b"\r\n\r\n"))
        self.save(name, body)


def raw_http(port: int, method: str, path: str, fields=None,
             auth=(STATS_USER, STATS_PASSWORD)) -> bytes:
    """One HTTP/1.1 exchange over a plain socket; the reply's exact bytes.
    auth: (user, password) for Basic authentication, or None."""
    body = urllib.parse.urlencode(fields or []).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if auth:
        token = b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    if method == "POST":
        lines += ["Content-Type: application/x-www-form-urlencoded",
                  f"Content-Length: {len(body)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def lf(data: bytes) -> bytes:
    """HTTP replies are saved with "\n" line ends: the wire's "\r\n" would
    fail ansible-test's line-endings sanity test, and HTTP clients never
    show it to a parser anyway.  Everything else is byte-exact."""
    return data.replace(b"\r\n", b"\n")


def dechunk(data: bytes) -> bytes:
    """Decode an HTTP/1.1 chunked body."""
    out = []
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[:size])
        data = data[size + 2:]


# --------------------------------------------------------------------------
# Lab A: read commands, errors, weights, add/del server, stats page


def capture_reads(c: Capture):
    c.cli("show_info.txt", "show info")
    c.cli("show_stat.txt", "show stat")
    c.cli("show_stat_app.txt", "show stat app 4 -1")
    c.cli("show_servers_state.txt", "show servers state")
    c.cli("show_servers_state_app.txt", "show servers state app")
    c.cli("show_backend.txt", "show backend")
    c.cli("get_weight.txt", "get weight app/web1")
    # Data replies after `set severity-output number` (no prefix, but the
    # empty reply of the first command comes first).
    c.cli("show_servers_state_app_sev.txt", SEV + "show servers state app")
    c.cli("get_weight_sev.txt", SEV + "get weight app/web1")
    c.cli("show_cli_level_operator.txt", "show cli level", c.lab.operator_socket)
    c.cli("show_cli_level_tcp.txt", "show cli level", c.lab.tcp_socket)


def capture_errors(c: Capture):
    c.cli("err_no_such_server.txt", SEV + "set server app/nosuch state drain")
    c.cli("err_no_such_backend.txt", SEV + "set server nosuch/web1 state drain")
    c.cli("err_get_weight_no_such_server.txt", SEV + "get weight app/nosuch")
    c.cli("err_get_weight_no_such_backend.txt", SEV + "get weight nosuch/web1")
    c.cli("err_require_backend_server.txt", SEV + "set server web1 state drain")
    c.cli("err_bad_state.txt", SEV + "set server app/web1 state foo")
    c.cli("err_permission_denied.txt", SEV + "set server app/web1 state drain",
          c.lab.operator_socket)
    c.cli("err_permission_denied_set_weight.txt", SEV + "set weight app/web1 0",
          c.lab.operator_socket)
    c.cli("err_weight_out_of_range.txt", SEV + "set weight app/web1 300")
    c.cli("err_static_weight.txt", SEV + "set weight static/s1 50")
    c.cli("set_weight_static_percent_ok.txt", SEV + "set weight static/s1 0%")
    c.cmd("set weight static/s1 100%")
    c.cli("err_enable_health_nocheck.txt", SEV + "enable health app/nocheck1")
    c.cli("err_show_servers_state_unknown.txt", SEV + "show servers state nosuch")
    c.cli("err_show_stat_unknown.txt", SEV + "show stat nosuch 4 -1")
    c.cli("err_unknown_command.txt", SEV + "foo")
    c.cli("err_unknown_command_plain.txt", "foo")
    c.cli("err_no_such_server_plain.txt", "set server app/nosuch state drain")


def capture_changes(c: Capture):
    """Successful writes: replies are (almost) empty, but framing differs."""
    c.cli("set_state_ok.txt", SEV + "set server app/web3 state drain")
    c.cli("set_state_ok_plain.txt", "set server app/web3 state ready")
    c.cli("set_weight_ok.txt", SEV + "set weight app/web1 50")
    c.cli("get_weight_after_set.txt", "get weight app/web1")
    c.cli("set_weight_percent_ok.txt", SEV + "set weight app/web1 50%")
    c.cli("get_weight_after_percent.txt", "get weight app/web1")
    c.cmd("set weight app/web1 1")


def capture_draining(c: Capture):
    """A DRAIN server with one request still open (scur 1)."""
    held = c.lab.hold("web2", seconds=60)
    c.cmd("set server app/web2 state drain")
    c.cli("show_stat_app_draining.txt", "show stat app 4 -1")
    c.cli("show_servers_state_app_draining.txt", "show servers state app")
    held.release()
    held.wait()
    c.cmd("set server app/web2 state ready")


def capture_add_del(c: Capture):
    """Runtime-added servers and `del server` / `wait srv-removable`."""
    lab = c.lab
    dyn = lab.add_app("dyn1")
    c.cli("add_server_ok.txt", SEV + f"add server app/dyn1 {dyn.address}")
    c.cli("add_server_exists.txt", SEV + f"add server app/dyn1 {dyn.address}")
    c.cli("add_server_static_backend.txt", SEV + f"add server static/dyn1 {dyn.address}")
    c.cli("add_server_unknown_backend.txt", SEV + f"add server nosuch/dyn1 {dyn.address}")
    c.cli("show_servers_state_app_added.txt", "show servers state app")
    c.cli("show_stat_app_added.txt", "show stat app 4 -1")

    c.cmd("set server app/dyn1 state ready")
    c.cli("del_server_not_maint.txt", SEV + "del server app/dyn1")
    c.cli("wait_srv_removable_not_maint.txt", SEV + "wait 200ms srv-removable app/dyn1")

    held = lab.hold("dyn1", seconds=60)
    c.cmd("set server app/dyn1 state maint")
    c.cli("del_server_connections.txt", SEV + "del server app/dyn1")
    c.cli("wait_srv_removable_timeout.txt", SEV + "wait 300ms srv-removable app/dyn1")
    held.release()
    held.wait()
    c.notes.append(f"held request on dyn1 finished with {held.status}")
    c.cli("wait_srv_removable_ok.txt", SEV + "wait 10s srv-removable app/dyn1")
    # 2.6 has no `wait srv-removable`: retry `del server` until it works
    # (idle keep-alive connections to the server may delay it).
    start = time.monotonic()
    reply = wait_until(lambda: _deleted(c), timeout=30, interval=0.1, what="dyn1 removable")
    c.notes.append(f"dyn1 deleted {time.monotonic() - start:.2f}s after the request ended")
    c.save("del_server_ok.txt", reply)
    c.cli("del_server_unknown.txt", SEV + "del server app/dyn1")

    # With a health check: dynamic servers do not inherit default-server,
    # start in MAINT with checks off, need `enable health` then `state ready`.
    dyn2 = lab.add_app("dyn2")
    c.cli("add_server_check_ok.txt", SEV + f"add server app/dyn2 {dyn2.address} check inter 200ms")
    c.cli("show_servers_state_app_added_check.txt", "show servers state app")
    c.cli("enable_health_ok.txt", SEV + "enable health app/dyn2")
    c.cmd("set server app/dyn2 state ready")
    lab.wait_status("app", "dyn2", "UP")
    c.cli("show_servers_state_app_added_up.txt", "show servers state app")

    # A server from the configuration file (not runtime-added).
    c.cmd("set server api/api1 state maint")
    c.cli("del_server_config_server.txt", SEV + "del server api/api1")


def _deleted(c: Capture) -> bytes | None:
    """The reply to `del server app/dyn1` once it says deleted, else None."""
    reply = c.lab.send_raw(SEV + "del server app/dyn1")
    if b"No such server" in reply:
        raise RuntimeError("dyn1 vanished before its deletion was captured")
    return reply if b"deleted" in reply else None


def capture_stats_page(c: Capture):
    port, ro_port = c.lab.stats_port, c.lab.stats_ro_port
    c.csv("stats_page_csv.txt", port)
    c.http("stats_page_post_done.txt", port, "POST", "/stats",
           [("s", "web3"), ("action", "drain"), ("b", "app")])
    c.http("stats_page_post_done_by_id.txt", port, "POST", "/stats",
           [("s", "web3"), ("action", "ready"), ("b", "#3")])
    c.http("stats_page_post_part.txt", port, "POST", "/stats",
           [("s", "web3"), ("s", "nosuch"), ("action", "drain"), ("b", "app")])
    c.cmd("set server app/web3 state ready")
    c.http("stats_page_post_none.txt", port, "POST", "/stats",
           [("action", "drain"), ("b", "app")])
    c.http("stats_page_post_none_nocheck.txt", port, "POST", "/stats",
           [("s", "nocheck1"), ("action", "dhlth"), ("b", "app")])
    c.http("stats_page_post_errp.txt", port, "POST", "/stats",
           [("s", "web3"), ("action", "drain"), ("b", "nosuch")])
    c.http("stats_page_post_errp_action.txt", port, "POST", "/stats",
           [("s", "web3"), ("action", "bogus"), ("b", "app")])
    c.http("stats_page_post_deny.txt", ro_port, "POST", "/stats",
           [("s", "web3"), ("action", "drain"), ("b", "app")])
    c.http("stats_page_post_unauthorized.txt", port, "POST", "/stats",
           [("s", "web3"), ("action", "drain"), ("b", "app")], auth=None)
    c.http("stats_page_post_wrong_password.txt", port, "POST", "/stats",
           [("s", "web3"), ("action", "drain"), ("b", "app")], auth=(STATS_USER, "wrong"))
    c.http("stats_page_csv_unauthorized.txt", port, "GET", "/stats;csv", auth=None)


# --------------------------------------------------------------------------
# Lab B: every admin state


def capture_states(c: Capture):
    lab = c.lab
    for name in ("downdrain1", "down1"):
        lab.set_health(name, False)
    lab.wait_servers_up()
    for name in ("downdrain1", "down1"):
        lab.wait_status("states", name, "DOWN")
    c.cmd("set server states/drain1 state drain")
    c.cmd("set server states/maint1 state maint")
    # `set server ... state maint|drain` and `disable server` each clear the
    # other *forced* bit, so FMAINT|FDRAIN (0x09) cannot be produced; the
    # MAINT+DRAIN combinations come from inherited or config bits.
    c.cmd("set server states/drainthenmaint1 state drain")
    c.cmd("set server states/drainthenmaint1 state maint")
    c.cmd("set server states/drainthendisable1 state drain")
    c.cmd("disable server states/drainthendisable1")
    c.cmd("set server states/trackm2 state drain")
    c.cmd("set server states/trackd2 state maint")
    c.cmd("set server states/cfgdisabled2 state drain")
    c.cmd("set server states/downdrain1 state drain")
    c.cmd("set weight states/weight0 0")
    time.sleep(0.5)      # let checks settle after the changes
    c.cli("states_show_servers_state.txt", "show servers state states")
    c.cli("states_show_servers_state_all.txt", "show servers state")
    c.cli("states_show_stat.txt", "show stat states 4 -1")
    c.cli("states_get_weight_weight0.txt", "get weight states/weight0")
    c.cli("states_get_weight_drain.txt", "get weight states/drain1")
    c.csv("stats_page_csv_states.txt", lab.stats_port)
    # Leaving MAINT/DRAIN: only the forced bits are cleared.
    c.cli("states_set_state_ready_ok.txt", SEV + "set server states/trackm2 state ready")
    c.cli("states_enable_server_ok.txt", SEV + "enable server states/trackd2")
    c.cmd("set server states/cfgdisabled1 state ready")
    c.cmd("set server states/cfgdisabled2 state ready")
    time.sleep(0.5)
    c.cli("states_show_servers_state_after_ready.txt", "show servers state states")
    c.cli("states_show_stat_after_ready.txt", "show stat states 4 -1")
    c.cli("states_del_server_tracked.txt", SEV + "del server states/maint1")
    c.cli("states_del_server_tracker.txt", SEV + "del server states/trackm1")


# --------------------------------------------------------------------------
# Lab C: production modes -- master-worker with an old worker, an agent check

PRODUCTION = {
    "app": {
        "balance": "roundrobin",
        "httpchk": "GET /health",
        "default_server": FAST_CHECKS,
        "servers": ["web1 check", "web2 check",
                    {"name": "web3", "options": "check weight 10", "agent": "ready"}],
    },
}


def capture_production(c: Capture):
    lab = c.lab
    lab.agent("web3").wait_checks(1)
    c.save("master_show_proc.txt", lab.master("show proc").encode())
    c.save("master_unknown_command.txt", lab.master("show stat").encode())
    c.save("master_unknown_pid.txt", lab.master("@!99999 show info").encode())
    c.cli("show_servers_state_agent.txt", "show servers state app")
    c.cli("show_stat_agent.txt", "show stat app 4 -1")
    c.cli("state_and_stat_app.txt", SEV + "show servers state app; show stat app 4 -1")
    c.cli("state_and_stat_unknown.txt", SEV + "show servers state nosuch; show stat nosuch 4 -1")
    c.cli("agent_disable_ok.txt", SEV + "disable agent app/web3")
    c.cli("show_servers_state_agent_disabled.txt", "show servers state app")
    c.cli("err_agent_not_configured.txt", SEV + "disable agent app/web1")
    c.cmd("enable agent app/web3")

    held = lab.hold("web2", seconds=60)
    reload = lab.reload("master-cli")
    old = reload.old_pids[0]
    c.save("master_show_proc_old_worker.txt", lab.master("show proc").encode())
    c.save("master_old_worker_show_stat_app.txt", lab.send_worker(old, "show stat app 4 -1").encode())
    c.save("master_old_worker_show_stat_unknown.txt", lab.send_worker(old, "show stat nosuch 4 -1").encode())
    c.save("master_old_worker_shutdown_sessions.txt",
           lab.send_worker(old, "shutdown sessions server app/web2").encode())
    sessions = c.save("master_old_worker_show_sess.txt", lab.send_worker(old, "show sess").encode())
    stream = next(line.split(":")[0] for line in sessions.decode().splitlines() if " srv=web2 " in line)
    c.save("master_old_worker_shutdown_session.txt", lab.send_worker(old, "shutdown session %s" % stream).encode())
    held.wait(5)
    c.notes.append(f"the request held by old worker {old} ended with {held.status} / {held.error}")


# --------------------------------------------------------------------------


def capture_version(version: str, only=None) -> list[str]:
    outdir = FIXTURES / version
    outdir.mkdir(parents=True, exist_ok=True)
    notes = []
    if only == "production":              # just lab C's files, the others are kept
        return capture_lab_c(version, outdir)
    for old in outdir.glob("*.txt"):      # no stale files from older runs
        old.unlink()
    with HAProxyLab(version=version, backends=TOPOLOGY) as lab:
        lab.wait_servers_up()
        c = Capture(lab, outdir)
        capture_reads(c)
        capture_stats_page(c)
        capture_errors(c)
        capture_changes(c)
        capture_draining(c)
        capture_add_del(c)
        notes += c.notes
        c.save("version.txt", (lab.version + "\n").encode())
    with HAProxyLab(version=version, backends=STATES) as lab:
        lab.wait_servers_up()
        c = Capture(lab, outdir)
        capture_states(c)
        notes += c.notes
    return notes + capture_lab_c(version, outdir)


def capture_lab_c(version: str, outdir: Path) -> list[str]:
    with HAProxyLab(version=version, backends=PRODUCTION, master_worker=True) as lab:
        lab.wait_servers_up()
        c = Capture(lab, outdir)
        capture_production(c)
        return c.notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", nargs="+", default=["2.6", "3.0", "3.2"])
    parser.add_argument("--only", choices=["production"],
                        help="capture only lab C (master-worker, agent) and keep the other files")
    args = parser.parse_args(argv)
    for version in args.version:
        notes = capture_version(version, args.only)
        print(f"{version}: wrote {FIXTURES / version}")
        for note in notes:
            print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
