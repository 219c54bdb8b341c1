"""The lab's app server, deploy tool and load generator, tested as the lab uses them.

The rolling-deploy proof ("a rolling deploy fails zero requests") is only as
good as these tools: the load generator must see failures when there are
some, and an undrained restart of the app must produce them.  Everything
runs as subprocesses on 127.0.0.1, as in `make demo`.
"""

import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
APP = ROOT / "lab" / "app" / "app.py"
CTL = ROOT / "lab" / "app" / "ctl.py"
LOADGEN = ROOT / "lab" / "loadgen.py"


# -- helpers --


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, headers=None, conn=None):
    """GET on a new (or the given) connection; returns (status, headers, body)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp, resp.read().decode()
    finally:
        if own:
            conn.close()


def wait_ready_line(proc, timeout=10.0):
    """Read the app's READY line from its stdout, bounded."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError("app printed no ready line")
    line = proc.stdout.readline()
    assert line.startswith("READY "), line
    return line


@pytest.fixture
def apps(tmp_path):
    """Start app.py instances directly (as tests do); all are killed afterwards."""
    started = []

    def start(version, name, *extra):
        port = free_port()
        pidfile = tmp_path / f"{name}.pid"
        with open(tmp_path / f"{name}.err", "w") as err:
            proc = subprocess.Popen(
                [sys.executable, str(APP), "--port", str(port), "--version", version,
                 "--name", name, "--pidfile", str(pidfile), *extra],
                stdout=subprocess.PIPE, stderr=err, text=True)
        started.append(proc)
        proc.ready_line = wait_ready_line(proc)
        proc.port, proc.pidfile = port, pidfile
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()


@pytest.fixture
def ctl(tmp_path):
    """Run ctl.py; every instance it started through a pidfile is stopped afterwards."""
    pidfiles = set()

    def run(*args, timeout=60):
        args = [str(a) for a in args]
        if "--pidfile" in args:
            pidfiles.add(args[args.index("--pidfile") + 1])
        return subprocess.run([sys.executable, str(CTL), *args],
                              capture_output=True, text=True, timeout=timeout)

    yield run
    for pidfile in pidfiles:
        subprocess.run([sys.executable, str(CTL), "stop", "--pidfile", pidfile, "--stop-timeout", "5"],
                       capture_output=True, timeout=30)


def start_loadgen(tmp_path, url, *extra, duration=2):
    out = tmp_path / f"loadgen-{time.monotonic_ns()}.json"
    proc = subprocess.Popen(
        [sys.executable, str(LOADGEN), "--url", url, "--duration", str(duration),
         "--json-out", str(out), "--quiet", *[str(e) for e in extra]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.json_out = out
    return proc


def wait_for_sigterm_handler(proc, timeout=30):
    """Until the load generator catches SIGTERM (SigCgt in /proc): a signal
    sent before its handler exists kills it, however long its start-up takes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/%d/status" % proc.pid) as handle:
            caught = int(next(line for line in handle if line.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.02)
    raise AssertionError("the load generator did not install its SIGTERM handler within %ds" % timeout)


def finish_loadgen(proc, timeout=60):
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.json_out.exists(), stderr
    summary = json.loads(proc.json_out.read_text())
    summary["_exit"], summary["_line"] = proc.returncode, stdout.strip()
    return summary


def run_loadgen(tmp_path, url, *extra, duration=2):
    return finish_loadgen(start_loadgen(tmp_path, url, *extra, duration=duration))


# -- the app server --


def test_app_endpoints(apps, tmp_path):
    web1 = apps("v1", "web1")
    assert f"http://127.0.0.1:{web1.port}/" in web1.ready_line
    assert web1.pidfile.read_text().strip() == str(web1.pid)

    status, resp, body = get(web1.port, "/")
    assert status == 200
    assert json.loads(body) == {"version": "v1", "name": "web1", "pid": web1.pid}
    assert resp.getheader("X-App-Version") == "v1"
    assert get(web1.port, "/health")[0::2] == (200, "OK v1\n")
    assert get(web1.port, "/version")[0::2] == (200, "v1\n")
    assert get(web1.port, "/nope")[0] == 404

    started = time.monotonic()
    assert get(web1.port, "/slow?ms=300")[0] == 200
    assert time.monotonic() - started >= 0.3


def test_app_keeps_connections_alive(apps):
    web1 = apps("v1", "web1")
    conn = http.client.HTTPConnection("127.0.0.1", web1.port, timeout=10)
    get(web1.port, "/", conn=conn)
    sock = conn.sock
    get(web1.port, "/", conn=conn)
    assert conn.sock is sock  # the same TCP connection served both
    conn.close()


def test_health_file_drain_and_broken_build(apps, tmp_path):
    flag = tmp_path / "healthy"
    web1 = apps("v1", "web1", "--health-file", str(flag))
    status, resp, body = get(web1.port, "/health")
    assert status == 503 and body.startswith("DRAINING v1")
    assert resp.getheader("X-App-Health") == "draining"
    assert get(web1.port, "/")[0] == 200  # drained through health only: still serves
    flag.touch()
    assert get(web1.port, "/health")[0::2] == (200, "OK v1\n")

    broken = apps("v2-broken", "web2")
    assert get(broken.port, "/health")[0::2] == (503, "BROKEN v2-broken\n")
    assert get(broken.port, "/version")[0] == 200


def test_an_errors_version_answers_every_nth_request_with_500_and_stays_healthy(apps):
    bad = apps("v2-errors3", "web2")
    statuses = [get(bad.port, "/")[0] for _number in range(9)]
    assert statuses == [200, 200, 500] * 3
    assert get(bad.port, "/health")[0::2] == (200, "OK v2-errors3\n")
    assert get(bad.port, "/version")[0] == 200


def test_sigterm_finishes_requests_in_flight_and_refuses_new_ones(apps):
    web1 = apps("v1", "web1")
    result = {}

    def slow_request():
        status, resp, _ = get(web1.port, "/slow?ms=1000")
        result.update(status=status, connection=resp.getheader("Connection"))

    client = threading.Thread(target=slow_request)
    client.start()
    time.sleep(0.3)  # the request is being held
    web1.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", web1.port), timeout=2)
    client.join(10)
    # The request in flight was answered, and told the connection ends.
    assert result == {"status": 200, "connection": "close"}
    assert web1.wait(10) == 0
    assert not web1.pidfile.exists()


def test_sigterm_closes_idle_keepalive_connections_but_serves_a_just_accepted_one(apps):
    web1 = apps("v1", "web1")
    idle = http.client.HTTPConnection("127.0.0.1", web1.port, timeout=10)
    get(web1.port, "/", conn=idle)  # now idle, kept alive
    fresh = socket.create_connection(("127.0.0.1", web1.port), timeout=10)
    time.sleep(0.2)  # accepted, no request yet
    web1.send_signal(signal.SIGTERM)
    time.sleep(0.3)

    # The idle keep-alive connection was closed: the server sent FIN.
    assert idle.sock.recv(1) == b""
    idle.close()
    # The just-accepted one may still send its first request.
    fresh.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = fresh.makefile("rb").read()  # until the server closes
    fresh.close()
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
    assert web1.wait(10) == 0


def test_client_resets_leave_no_traceback(apps, tmp_path):
    web1 = apps("v1", "web1")
    for _ in range(5):  # what every HAProxy health check does: request, then RST
        s = socket.create_connection(("127.0.0.1", web1.port), timeout=10)
        s.sendall(b"GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    time.sleep(0.3)
    assert get(web1.port, "/health")[0] == 200
    assert "Traceback" not in (tmp_path / "web1.err").read_text()


def test_restart_on_the_same_port_binds_at_once(apps):
    web1 = apps("v1", "web1")
    port = web1.port
    get(port, "/")  # leaves a connection in TIME_WAIT on the server side
    web1.send_signal(signal.SIGTERM)
    assert web1.wait(10) == 0
    # SO_REUSEADDR: no "Address already in use".
    web2 = subprocess.Popen([sys.executable, str(APP), "--port", str(port), "--version", "v2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_ready_line(web2)
        assert get(port, "/version")[2] == "v2\n"
    finally:
        web2.kill()
        web2.wait(10)
        web2.stdout.close()


# -- the load generator --


def test_loadgen_against_a_live_app_sees_no_failure(apps, tmp_path):
    web1 = apps("v1", "web1")
    web2 = apps("v2", "web2")
    summary = run_loadgen(tmp_path, f"http://127.0.0.1:{web1.port}/", "--rate", "150", duration=2)

    assert summary["_exit"] == 0, summary["_line"]
    assert summary["failed"] == 0 and summary["errors"] == {}
    assert summary["sent"] == summary["ok"] > 100
    assert summary["versions"] == {"v1": summary["ok"]}
    assert 1.9 <= summary["duration"] < 5
    assert summary["stopped_by"] == "duration"
    assert sum(s["ok"] for s in summary["timeline"]) == summary["ok"]
    assert summary["connections"]["opened"] < summary["sent"]  # keep-alive was used
    assert "0 failed" in summary["_line"] and "v1=" in summary["_line"]
    # The other instance answers as itself.
    assert json.loads(get(web2.port, "/")[2])["name"] == "web2"


def test_loadgen_counts_failures_when_the_app_is_killed(apps, tmp_path):
    web1 = apps("v1", "web1")
    lg = start_loadgen(tmp_path, f"http://127.0.0.1:{web1.port}/", "--rate", "150", duration=3)
    time.sleep(1.0)
    web1.kill()  # SIGKILL: no graceful anything
    summary = finish_loadgen(lg)

    assert summary["_exit"] == 1
    assert summary["ok"] > 50
    assert summary["failed"] > 50  # ~2 s of refused connections
    assert summary["errors"].get("refused", 0) > 0
    assert summary["sent"] == summary["ok"] + summary["failed"]
    assert summary["failure_samples"]


def test_loadgen_stops_on_until_file_and_on_sigterm(apps, tmp_path):
    web1 = apps("v1", "web1")
    url = f"http://127.0.0.1:{web1.port}/"
    flag = tmp_path / "stop"
    lg = start_loadgen(tmp_path, url, "--until-file", flag, duration=60)
    time.sleep(0.5)
    flag.touch()
    summary = finish_loadgen(lg, timeout=15)
    assert summary["stopped_by"] == "until-file" and summary["duration"] < 5
    assert summary["failed"] == 0 and summary["ok"] > 0

    lg = start_loadgen(tmp_path, url, duration=60)
    wait_for_sigterm_handler(lg)
    time.sleep(0.5)
    lg.send_signal(signal.SIGTERM)
    summary = finish_loadgen(lg, timeout=15)
    assert summary["stopped_by"] == "signal" and summary["duration"] < 5
    assert summary["failed"] == 0 and summary["unfinished"] == 0


class ScriptedServer:
    """A raw TCP server misbehaving in one precise way, to pin down the counting rules.

    mode "stale": answers the first request on each connection (keep-alive),
    then reads the next one and closes without a byte of response -- the race
    between a client reusing an idle connection and the server closing it.
    mode "cut": sends the status line, headers and part of the body, then resets.
    """

    RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-App-Version: v1\r\n\r\nok\n")

    def __init__(self, mode):
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        with conn:
            reader = conn.makefile("rb")
            if not read_request(reader):
                return
            if self.mode == "cut":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return  # close with linger 0: RST
            conn.sendall(self.RESPONSE)
            read_request(reader)  # the reuse attempt: read it, answer nothing

    def close(self):
        self.listener.close()


def read_request(reader):
    """Read one request head; False on EOF."""
    line = reader.readline()
    while line not in (b"\r\n", b""):
        line = reader.readline()
    return line == b"\r\n"


def test_loadgen_retries_a_keepalive_connection_closed_before_any_response_byte(tmp_path):
    server = ScriptedServer("stale")
    url = f"http://127.0.0.1:{server.port}/"
    try:
        tolerant = run_loadgen(tmp_path, url, "--keepalive-share", "1", "--slow-share", "0",
                               "--concurrency", "1", "--rate", "40", duration=1)
        strict = run_loadgen(tmp_path, url, "--keepalive-share", "1", "--slow-share", "0",
                             "--concurrency", "1", "--rate", "40", "--strict-keepalive", duration=1)
    finally:
        server.close()
    # Like a browser or urllib3: resent once on a new connection, not a failure.
    assert tolerant["failed"] == 0 and tolerant["ok"] > 10
    assert tolerant["retried"]["stale_keepalive"] >= tolerant["ok"] // 2 - 1
    # A client that does not retry sees every other request fail.
    assert strict["errors"].keys() == {"stale_keepalive"}
    assert strict["failed"] >= strict["sent"] // 2 - 1


def test_loadgen_counts_a_response_cut_mid_way(tmp_path):
    server = ScriptedServer("cut")
    try:
        summary = run_loadgen(tmp_path, f"http://127.0.0.1:{server.port}/", "--keepalive-share", "0.5",
                              "--slow-share", "0", "--concurrency", "1", "--rate", "20", duration=1)
    finally:
        server.close()
    assert summary["ok"] == 0 and summary["failed"] == summary["sent"] > 5
    assert summary["errors"].keys() == {"reset_mid_response"}
    assert summary["retried"] == {}  # response bytes had arrived: never retried


# -- ctl.py --


def ctl_args(port, pidfile, version, *extra):
    return ("deploy", "--port", port, "--name", "web1", "--version", version, "--pidfile", pidfile, *extra)


def test_ctl_deploy_moves_v1_to_v2_on_the_same_port(ctl, tmp_path):
    port, pidfile = free_port(), tmp_path / "web1.pid"
    first = ctl(*ctl_args(port, pidfile, "v1"))
    assert first.returncode == 0, first.stderr
    assert "healthy" in first.stdout and "previous instance: not running" in first.stdout
    v1_pid = int(pidfile.read_text())

    lg = start_loadgen(tmp_path, f"http://127.0.0.1:{port}/", "--rate", "150", duration=3)
    time.sleep(1.0)
    second = ctl(*ctl_args(port, pidfile, "v2"))
    summary = finish_loadgen(lg)

    assert second.returncode == 0, second.stderr
    assert f"stopped pid {v1_pid}" in second.stdout
    assert summary["versions"].get("v1", 0) > 0 and summary["versions"].get("v2", 0) > 0
    # Restarting without draining fails requests: that is what the role prevents.
    assert summary["failed"] > 0

    status = ctl("status", "--pidfile", pidfile, "--port", port)
    assert status.returncode == 0
    assert json.loads(status.stdout)["version"] == "v2"
    # The new instance is detached: its own session, not ctl's.
    assert os.getsid(json.loads(status.stdout)["pid"]) == json.loads(status.stdout)["pid"]
    assert ctl("stop", "--pidfile", pidfile).returncode == 0
    assert ctl("status", "--pidfile", pidfile).returncode == 3
    assert "not running" in ctl("stop", "--pidfile", pidfile).stdout  # idempotent


def test_ctl_deploy_of_a_broken_version_fails(ctl, tmp_path):
    port, pidfile = free_port(), tmp_path / "web1.pid"
    assert ctl(*ctl_args(port, pidfile, "v1")).returncode == 0

    broken = ctl(*ctl_args(port, pidfile, "v2-broken", "--start-timeout", "1.5"))
    assert broken.returncode == 1
    assert "did not become healthy" in broken.stderr and "503" in broken.stderr
    # The broken build is left running (as a failed real deploy leaves it).
    assert get(port, "/version")[2] == "v2-broken\n"

    flagged = ctl(*ctl_args(port, pidfile, "v3", "--break", "--start-timeout", "1"))
    assert flagged.returncode == 1 and "BROKEN v3" in flagged.stderr

    # A rollback is just another deploy.
    assert ctl(*ctl_args(port, pidfile, "v1")).returncode == 0
    assert get(port, "/health")[0::2] == (200, "OK v1\n")


def test_ctl_start_refuses_to_replace_another_version(ctl, tmp_path):
    port, pidfile = free_port(), tmp_path / "web1.pid"
    start = ("start", "--port", port, "--name", "web1", "--pidfile", pidfile, "--version")
    assert ctl(*start, "v1").returncode == 0
    again = ctl(*start, "v1")
    assert again.returncode == 0 and "already running" in again.stdout
    other = ctl(*start, "v2")
    assert other.returncode == 1 and "use deploy" in other.stderr
