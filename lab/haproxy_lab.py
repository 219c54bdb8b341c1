#!/usr/bin/env python3
"""A real HAProxy (2.6, 3.0 or 3.2) on 127.0.0.1 for tests, demos and benchmarks.

Standard library only (Python >= 3.11), so it runs anywhere the tests run.

    from lab.haproxy_lab import HAProxyLab
    with HAProxyLab(version="3.0") as lab:
        lab.wait_servers_up()
        print(lab.send("show servers state app"))
        held = lab.hold("web2", seconds=30)      # one open request on app/web2
        lab.send("set server app/web2 state drain")
        ...                                      # scur of web2 stays 1
        held.release()                           # the request finishes (200)

What it starts:

* small HTTP servers ("apps") in threads of this process, one per distinct
  server name, each on its own port: ``/health`` (200, or 503 while the app is
  marked unhealthy or its flag file ``<workdir>/apps/<name>.down`` exists),
  ``/slow?seconds=N[&id=X]`` (holds the request up to N s, or until released),
  anything else answers 200 with the app's name.  A leading ``/api`` is
  ignored so the same apps serve the ``api`` backend.
* one haproxy process in the foreground (``-db``) with a generated config:
  a frontend, the backends described by ``backends`` (default: ``app`` and
  ``api``), an admin and a read-only stats page, an admin and an operator
  unix stats socket and an admin TCP stats socket.

Routing through the frontend: header ``X-Backend: <backend>`` (or a path
under ``/api/``) picks the backend; header ``X-Server: <server>`` picks the
server with a dynamic ``use-server`` rule.  Like persistence, ``use-server``
still reaches a DRAIN server (but not a MAINT one): only send ``X-Server``
when the test means it.  The dynamic form is used on purpose: explicit
``use-server NAME`` rules would make every server undeletable by
``del server`` ("other configuration elements pointing to it").

Production modes, each optional:

* ``master_worker=True``: ``haproxy -W -S <workdir>/master.sock`` as systemd
  units run it; ``master(cmd)``, ``show_proc()``, ``workers()`` and
  ``send_worker(pid, cmd)`` (``@!<pid> cmd``) reach every live worker, old
  ones included; ``reload("master-cli")`` or ``reload("signal")`` (SIGUSR2,
  what ``systemctl reload`` sends).  Without it, ``reload("sf")`` starts a
  new process with ``-sf <old pid>``.
* ``server_state_file=True``: ``server-state-file`` + ``load-server-state-from-file
  global``; ``save_server_state()`` writes ``show servers state`` to it.
* agent checks: a server given as {"name": ..., "options": "check", "agent":
  "ready"} gets an ``AgentServer`` (``lab.agent(name)``, ``.set("drain")``).
* persistence: ``cookie_backend()`` / ``stick_table_backend()`` specs, and
  ``CookieClient`` that keeps coming back with its cookie.

Everything started is stopped by ``stop()``, by the context manager, and at
interpreter exit (atexit); haproxy also gets SIGKILL from the kernel if the
Python process dies abruptly (PR_SET_PDEATHSIG).

CLI for humans:  python3 lab/haproxy_lab.py --version 3.0 run
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import http.client
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCALHOST = "127.0.0.1"

BINARIES = {
    "2.6": Path("/usr/sbin/haproxy"),
    "3.0": REPO_ROOT / ".cache" / "haproxy-3.0" / "haproxy",
    "3.2": REPO_ROOT / ".cache" / "haproxy-3.2" / "haproxy",
}
# Lines unpacked privately from newer Debian suites: `fetch.sh <line>`.
FETCH_SCRIPT = REPO_ROOT / "lab" / "haproxy" / "fetch.sh"
FETCHED_LINES = ("3.0", "3.2")

STATS_USER = "admin"
STATS_PASSWORD = "secret"

# Fast checks so state changes are visible within a second in tests.
FAST_CHECKS = "inter 200ms fall 2 rise 1"
# Agent checks as fast (agent-check agent-port <port> agent-inter ...).
AGENT_INTER = "200ms"

DEFAULT_BACKENDS = {
    "app": {
        "balance": "roundrobin",
        "httpchk": "GET /health",
        "default_server": FAST_CHECKS,
        "servers": ["web1 check", "web2 check", "web3 check",
                    "shared1 check", "nocheck1"],
    },
    "api": {
        "balance": "roundrobin",
        "httpchk": "GET /health",
        "default_server": FAST_CHECKS,
        "servers": ["shared1 check", "api1 check"],
    },
}

# Unix socket paths are limited to 108 bytes; HAProxy also binds
# "<path>.<pid>.tmp" first, so keep a margin.
MAX_SOCKET_PATH = 90


class LabError(RuntimeError):
    """The lab could not be set up or did not behave (message says why)."""


# --------------------------------------------------------------------------
# Small helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    There is a short race until haproxy binds it; start() retries with new
    ports if haproxy reports a bind failure.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition"):
    """Poll predicate() until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def parse_csv_stat(text: str) -> list[dict]:
    """Rows of `show stat` / `;csv` output as dicts keyed by the header names."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        raise LabError(f"not show stat output: {text[:200]!r}")
    header = lines[0][2:].rstrip(",").split(",")
    return [dict(zip(header, ln.rstrip(",").split(","))) for ln in lines[1:]]


def parse_servers_state(text: str) -> list[dict]:
    """Rows of `show servers state` as dicts keyed by the header names."""
    lines = text.splitlines()
    header = next((ln[2:].split() for ln in lines if ln.startswith("# ")), None)
    if header is None:
        raise LabError(f"not show servers state output: {text[:200]!r}")
    rows = [ln.split() for ln in lines if ln and not ln.startswith("#")]
    return [dict(zip(header, r)) for r in rows if len(r) > 1]


def _set_pdeathsig():
    """In the child before exec: die with SIGKILL when the parent dies."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------
# The local HTTP "application" servers


class AppServer:
    """A tiny threaded HTTP server standing in for one application instance.

    Attributes: name, port, address ("127.0.0.1:PORT"), active (requests in
    progress), requests (total served), healthy (False -> /health is 503),
    health_checks (/health requests so far, i.e. HAProxy's checks),
    last_health_check (time.monotonic() of the latest, or None) and
    error_every (0: off; N: every Nth application request - anything but
    /health - is answered 500, deterministically: the Nth, the 2Nth, ...;
    app_requests counts them).
    """

    def __init__(self, name: str, flag_dir: Path, port: int = 0):
        self.name = name
        self.port = port
        self.flag_file = Path(flag_dir) / f"{name}.down"
        self.healthy = True
        self.active = 0
        self.requests = 0
        self.health_checks = 0
        self.last_health_check: float | None = None
        self.error_every = 0
        self.app_requests = 0
        self._lock = threading.Lock()
        self._holds: dict[str, threading.Event] = {}   # request id -> release
        self._started: dict[str, float] = {}           # request id -> time
        self._httpd = None
        self._thread = None

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self):
        """Listen (again, on the same port if it had one) and serve in a thread."""
        if self._httpd:
            return
        self._httpd = _AppHTTPServer((LOCALHOST, self.port), _AppHandler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"app-{self.name}", daemon=True)
        self._thread.start()

    def stop(self):
        """Stop listening (simulates the instance being down); releases holds."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.release_all()
        httpd.shutdown()
        httpd.server_close()
        self._thread.join(timeout=5)

    def set_healthy(self, ok: bool):
        """Make /health answer 200 (ok) or 503; the flag file does the same
        for other processes (e.g. a playbook's deploy tasks)."""
        self.healthy = ok

    def is_healthy(self) -> bool:
        return self.healthy and not self.flag_file.exists()

    # --- holding requests open

    def release(self, request_id: str):
        with self._lock:
            event = self._holds.setdefault(request_id, threading.Event())
        event.set()

    def release_all(self):
        with self._lock:
            for event in self._holds.values():
                event.set()

    def has_started(self, request_id: str) -> bool:
        with self._lock:
            return request_id in self._started

    def _hold(self, request_id: str, seconds: float):
        with self._lock:
            event = self._holds.setdefault(request_id, threading.Event())
            self._started[request_id] = time.monotonic()
        event.wait(seconds)
        with self._lock:
            self._holds.pop(request_id, None)


class _AppHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, app: AppServer):
        self.app = app
        super().__init__(addr, handler)

    def handle_error(self, request, client_address):
        # HAProxy's health checks close with a reset as soon as they have the
        # status line, and clients of held requests may go away: not errors.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _AppHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive, as HAProxy expects by default
    server_version = "haproxy-lab-app"

    def log_message(self, format, *args):   # noqa: A002 - stdlib signature
        pass                                # quiet: tests read results, not logs

    def do_GET(self):
        app = self.server.app
        url = urllib.parse.urlsplit(self.path)
        path = url.path[4:] if url.path.startswith("/api/") else url.path
        query = urllib.parse.parse_qs(url.query)
        with app._lock:
            app.active += 1
            app.requests += 1
            failing = False
            if path == "/health":
                app.health_checks += 1
                app.last_health_check = time.monotonic()
            else:
                app.app_requests += 1
                failing = bool(app.error_every) and app.app_requests % app.error_every == 0
        try:
            if failing:
                self._reply(500, f"{app.name} error\n")
            elif path == "/health":
                ok = app.is_healthy()
                self._reply(200 if ok else 503, "ok\n" if ok else "unhealthy\n")
            elif path == "/slow":
                seconds = float(query.get("seconds", ["10"])[0])
                request_id = query.get("id", [uuid.uuid4().hex])[0]
                app._hold(request_id, seconds)
                self._reply(200, f"{app.name} slow done\n")
            else:
                self._reply(200, f"{app.name}\n")
        finally:
            with app._lock:
                app.active -= 1

    do_HEAD = do_GET

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.do_GET()

    def _reply(self, status: int, body: str):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Served-By", self.server.app.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


# --------------------------------------------------------------------------
# A request held open through HAProxy


class HeldRequest:
    """A client request through the frontend that an app keeps open.

    Attributes: request_id, server (the app that got it, once started),
    status / body / error (once finished).  Methods: release(), wait().
    """

    def __init__(self, lab: "HAProxyLab", path: str, headers: dict,
                 timeout: float):
        self.lab = lab
        self.request_id = uuid.uuid4().hex
        self.server: str | None = None
        self.status: int | None = None
        self.body: str | None = None
        self.error: Exception | None = None
        sep = "&" if "?" in path else "?"
        self._path = f"{path}{sep}id={self.request_id}"
        self._headers = headers
        self._timeout = timeout
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"held-{self.request_id[:8]}")

    def _run(self):
        try:
            conn = http.client.HTTPConnection(LOCALHOST, self.lab.frontend_port,
                                              timeout=self._timeout)
            try:
                conn.request("GET", self._path, headers=self._headers)
                resp = conn.getresponse()
                self.body = resp.read().decode(errors="replace")
                self.status = resp.status
            finally:
                conn.close()
        except Exception as exc:   # reported to the test through .error
            self.error = exc
        finally:
            self._done.set()

    def start(self, wait_started: float = 5.0) -> "HeldRequest":
        """Send the request; return once an app holds it (or it finished)."""
        self._thread.start()
        wait_until(lambda: self._find_server() or self._done.is_set(),
                   timeout=wait_started, what=f"request {self._path} to reach an app")
        return self

    def _find_server(self) -> str | None:
        for app in self.lab.apps.values():
            if app.has_started(self.request_id):
                self.server = app.name
                return app.name
        return None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def release(self):
        """Let the app finish the request now."""
        for app in self.lab.apps.values():
            if app.has_started(self.request_id):
                app.release(self.request_id)

    def wait(self, timeout: float = 10.0) -> int | None:
        """Wait for the reply; return the HTTP status (None on error)."""
        self._done.wait(timeout)
        return self.status

    def close(self):
        self.release()
        self.wait(5)


# --------------------------------------------------------------------------
# An agent for HAProxy's agent-check


class AgentServer:
    """A TCP agent as HAProxy's `agent-check` expects: every connection gets
    one line (the current ``reply``: "ready", "drain", "maint", "up 100%",
    "50%", "down#why", ...) and is closed.  Change the reply at runtime with
    set(); ``checks`` counts the checks answered.  hold() keeps the next
    check waiting for its answer until release(), so a test can change the
    server's state at a moment when no agent answer can be on its way.

    A backend server gets one with the dict form {"name": ..., "options":
    "check", "agent": "<first reply>"}; the lab starts it, adds
    ``agent-check agent-port <port> agent-inter AGENT_INTER`` to the server
    line, and gives it as ``lab.agent(<name>)``.
    """

    def __init__(self, name: str, reply: str = "ready", port: int = 0):
        self.name = name
        self.port = port
        self.checks = 0
        self._reply = reply
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread = None
        self._holding = False
        self._held: list[socket.socket] = []

    @property
    def reply(self) -> str:
        with self._lock:
            return self._reply

    def set(self, reply: str):
        """Answer the next checks with this line (without its newline)."""
        if "\n" in reply or "\r" in reply:
            raise LabError(f"agent {self.name}: one line only, got {reply!r}")
        with self._lock:
            self._reply = reply

    def wait_checks(self, count: int = 1, timeout: float = 5.0) -> int:
        """Wait until HAProxy has asked `count` more times; the new total."""
        target = self.checks + count
        return wait_until(lambda: self.checks >= target and self.checks, timeout=timeout,
                          what=f"{count} agent check(s) on {self.name}")

    def hold(self, timeout: float = 5.0):
        """Return once HAProxy has opened its next check and is waiting for
        the answer, which it gets at release().  HAProxy runs one agent check
        at a time per server, so from then on no answer to an earlier check
        can still be on its way: whatever the test does to the server's state
        now holds until release()."""
        with self._lock:
            self._holding = True
        wait_until(lambda: self._held, timeout=timeout, interval=0.005,
                   what=f"the next agent check on {self.name}, held")

    def release(self):
        """Answer the held checks with the current reply, and the next ones as usual."""
        with self._lock:
            self._holding = False
            held, self._held = self._held, []
        for conn in held:
            self._answer(conn)

    def _answer(self, conn: socket.socket):
        with conn:
            try:
                conn.sendall(self.reply.encode() + b"\n")
            except OSError:
                pass
        with self._lock:
            self.checks += 1

    def start(self):
        if self._sock:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOCALHOST, self.port))
        sock.listen(16)
        sock.settimeout(0.05)          # lets stop() end the loop promptly
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True,
                                        name=f"agent-{self.name}")
        self._thread.start()

    def stop(self):
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._thread.join(timeout=5)
        sock.close()

    def _serve(self, sock: socket.socket):
        while self._sock is sock:
            try:
                conn, _ = sock.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                if self._holding:
                    self._held.append(conn)
                    continue
            self._answer(conn)


# --------------------------------------------------------------------------
# Persistence: backends and a client that keeps its cookie


PERSISTENCE_COOKIE = "SRV"


def cookie_backend(servers=("web1", "web2", "web3")) -> dict:
    """A backend spec with cookie persistence: HAProxy inserts
    ``SRV=<server>`` on the first reply and routes every request carrying it
    to that server, even in DRAIN (not in MAINT)."""
    return {
        "balance": "roundrobin",
        "lines": [f"cookie {PERSISTENCE_COOKIE} insert indirect nocache"],
        "servers": [f"{name} check cookie {name}" for name in servers],
    }


def stick_table_backend(servers=("web1", "web2", "web3")) -> dict:
    """A backend spec with stick-table persistence on the client address
    (every lab client is 127.0.0.1, so all of them stick together)."""
    return {
        "balance": "roundrobin",
        "lines": ["stick-table type ip size 1k expire 10m", "stick on src"],
        "servers": [f"{name} check" for name in servers],
    }


class CookieClient:
    """A browser-like client of one backend: sends back the persistence
    cookie HAProxy set, as a returning user does.

        client = CookieClient(lab, "sticky")
        first = client.get()          # the server that answered ("web2")
        client.get() == first         # while web2 is UP or DRAIN

    ``cookie`` is the value held (None before the first reply sets one);
    ``served`` lists the servers that answered, in order.
    """

    def __init__(self, lab: "HAProxyLab", backend: str, name: str = PERSISTENCE_COOKIE):
        self.lab = lab
        self.backend = backend
        self.name = name
        self.cookie: str | None = None
        self.served: list[str] = []

    def get(self, path: str = "/") -> str:
        """One request; the name of the server that answered (status 200)."""
        headers = {"X-Backend": self.backend}
        if self.cookie:
            headers["Cookie"] = f"{self.name}={self.cookie}"
        status, reply_headers, body = self.lab.request(path, headers=headers)
        if status != 200:
            raise LabError(f"{self.backend} answered {status}: {body[:200]!r}")
        for part in reply_headers.get("set-cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == self.name:
                self.cookie = value
        server = reply_headers.get("x-served-by", "")
        self.served.append(server)
        return server


# --------------------------------------------------------------------------
# Configuration


def normalize_backends(backends: dict) -> dict:
    """Fill defaults and turn server strings "name kw..." into dicts.

    A server dict has: name, options (haproxy keywords after the address),
    app (the app server it points to: default its own name; None means no
    app at all, i.e. a closed port, for a server that is always DOWN) and
    agent (None, or the first reply of an AgentServer for it: the server
    gets an agent-check on that agent's port).
    """
    result = {}
    for bname, spec in backends.items():
        spec = dict(spec)
        spec.setdefault("balance", "roundrobin")
        spec.setdefault("httpchk", "GET /health")
        spec.setdefault("default_server", FAST_CHECKS)
        spec.setdefault("lines", [])
        servers = []
        for srv in spec.get("servers", []):
            if isinstance(srv, str):
                name, _, options = srv.strip().partition(" ")
                srv = {"name": name, "options": options.strip()}
            srv = dict(srv)
            srv.setdefault("options", "")
            srv.setdefault("app", srv["name"])
            srv.setdefault("agent", None)      # first reply of its AgentServer
            servers.append(srv)
        spec["servers"] = servers
        result[bname] = spec
    return result


def render_config(lab: "HAProxyLab") -> str:
    """The haproxy configuration for this lab, as text."""
    out = [
        "# generated by lab/haproxy_lab.py",
        "global",
        f"    stats socket {lab.admin_socket} mode 600 level admin",
        f"    stats socket {lab.operator_socket} mode 600 level operator",
        f"    stats socket ipv4@{LOCALHOST}:{lab.tcp_port} level admin",
        "    stats timeout 2m",
        "    maxconn 2000",
        *([f"    server-state-file {lab.server_state_path}"] if lab.server_state_path else []),
        *(f"    {line}" for line in lab.extra_global),
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        # Without it a check must be answered within `inter` (200 ms): on a
        # loaded 2-core machine a Python app thread misses that now and then,
        # the server turns "UP 1/2" and the guard rightly stops counting it.
        # Connect stays bounded by inter; only the answer gets 2 s.
        "    timeout check 2s",
        "    timeout client 5m",
        "    timeout server 5m",
        "    timeout queue 10s",
        "    timeout http-request 10s",
        *(["    load-server-state-from-file global"] if lab.server_state_path else []),
        *(f"    {line}" for line in lab.extra_defaults),
        "",
        "frontend fe_main",
        f"    bind {LOCALHOST}:{lab.frontend_port}",
        *_routing_lines(lab),
        "",
    ]
    for bname, spec in lab.backends.items():
        out += _backend_lines(lab, bname, spec) + [""]
    out += _stats_lines("stats", lab.stats_port, admin=True)
    out += [""] + _stats_lines("stats_ro", lab.stats_ro_port, admin=False)
    return "\n".join(out) + "\n"


def _routing_lines(lab: "HAProxyLab") -> list[str]:
    # X-Backend names a backend; "/api/..." goes to api when it exists; the
    # first backend is the default.
    lines = ["    use_backend %[req.hdr(x-backend)] if { req.hdr(x-backend) -m found }"]
    if "api" in lab.backends:
        lines.append("    use_backend api if { path_beg /api/ }")
    lines.append(f"    default_backend {next(iter(lab.backends))}")
    return lines


def _backend_lines(lab: "HAProxyLab", bname: str, spec: dict) -> list[str]:
    lines = [f"backend {bname}"]
    if spec["balance"]:
        lines.append(f"    balance {spec['balance']}")
    if spec["httpchk"]:
        lines.append(f"    option httpchk {spec['httpchk']}")
    if spec["default_server"]:
        lines.append(f"    default-server {spec['default_server']}")
    lines += [f"    {line}" for line in spec["lines"]]
    lines.append("    use-server %[req.hdr(x-server)] if { req.hdr(x-server) -m found }")
    for srv in spec["servers"]:
        addr = lab.server_address(srv)
        options = srv["options"]
        if srv["agent"] is not None:
            agent = lab.agents[srv["app"] or srv["name"]]
            options += f" agent-check agent-port {agent.port} agent-inter {AGENT_INTER}"
        lines.append(f"    server {srv['name']} {addr} {options.strip()}".rstrip())
    return lines


def _stats_lines(name: str, port: int, admin: bool) -> list[str]:
    lines = [
        f"listen {name}",
        f"    bind {LOCALHOST}:{port}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 0",
        f"    stats auth {STATS_USER}:{STATS_PASSWORD}",
    ]
    if admin:
        lines.append("    stats admin if TRUE")
    return lines


# --------------------------------------------------------------------------
# The lab


_LIVE_LABS: set = set()


@atexit.register
def _stop_all_labs():
    for lab in list(_LIVE_LABS):
        lab.stop()


def find_binary(version: str, auto_fetch: bool = True) -> Path:
    """Path of the haproxy binary for a version line ("2.6", "3.0", "3.2")."""
    if version not in BINARIES:
        raise LabError(f"unknown HAProxy version {version!r}; use one of {sorted(BINARIES)}")
    binary = BINARIES[version]
    if not binary.exists() and version in FETCHED_LINES:
        command = [str(FETCH_SCRIPT), version]
        if not auto_fetch:
            raise LabError(f"{binary} is missing: run {' '.join(command)} first")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not binary.exists():
            raise LabError(f"{' '.join(command)} failed (rc={result.returncode}):\n"
                           f"{result.stderr[-2000:]}")
    if not binary.exists():
        raise LabError(f"{binary} is missing: apt-get install haproxy")
    return binary


def binary_version(binary: Path) -> str:
    """Full version string, e.g. '2.6.12-1+deb12u4'."""
    out = subprocess.run([str(binary), "-v"], capture_output=True, text=True, check=False,
                         timeout=10).stdout
    match = re.search(r"HA-?Proxy version (\S+)", out)
    if not match:
        raise LabError(f"{binary} -v printed no version: {out[:200]!r}")
    return match.group(1)


@dataclass
class Reload:
    """What HAProxyLab.reload() did and saw."""
    how: str                  # "master-cli", "signal" or "sf"
    reply: str                # the master CLI's answer to `reload` ("" otherwise)
    old_pids: list[int] = field(default_factory=list)   # workers before the reload
    new_pid: int = 0          # the worker answering on the admin socket after it
    seconds: float = 0.0      # from the trigger until new_pid answered


class HAProxyLab:
    """A running HAProxy with local app servers; see the module docstring.

    Constructor arguments:
      version        "2.6" (system /usr/sbin/haproxy), "3.0" (trixie build) or
                     "3.2" (forky build)
      workdir        directory for config, sockets and logs; default a fresh
                     temporary directory, removed on stop()
      backends       backend description (see DEFAULT_BACKENDS and
                     normalize_backends); default app + api
      binary         explicit haproxy path (overrides version's default)
      extra_global, extra_defaults   extra config lines for those sections
      auto_fetch     run lab/haproxy/fetch.sh <line> when a 3.x binary is missing
      start_timeout  seconds to wait for the admin socket
      master_worker  run as production's systemd unit does: `haproxy -W -S
                     <workdir>/master.sock` (master CLI at master_socket; the
                     admin sockets are the current worker's); default the
                     classic single process in the foreground (-db)
      server_state_file  write `server-state-file <workdir>/server-state` in
                     global and `load-server-state-from-file global` in
                     defaults, so states saved by save_server_state() survive
                     a reload

    Attributes (after start()): binary, version ("3.0.11-1+deb13u5"),
    version_line ("3.0"), pid, process, workdir, config_path, log_path,
    admin_socket, operator_socket, tcp_socket ("tcp://127.0.0.1:PORT"),
    tcp_port, frontend_url/frontend_port, stats_url/stats_port,
    stats_url_readonly/stats_ro_port, stats_user, stats_password,
    backends (normalized description), apps {name: AppServer}, agents
    {name: AgentServer}, master_socket (None unless master_worker),
    server_state_path (None unless server_state_file), old_processes
    (processes a -sf reload asked to finish).

    Methods: start(), stop(), send(cmd, socket_path=None), send_raw(...),
    show_stat(backend=None), servers_state(backend=None), server_stat(b, s),
    wait_servers_up(), wait_status(b, s, status), request(path, server=,
    backend=), hold(server, seconds, backend=) -> HeldRequest, set_health(name,
    ok), app(name), add_app(name), addr(server, backend=None), stats_get(),
    stats_post(fields, readonly=False), endpoints(), agent(name),
    save_server_state(); reloads: reload(how) -> Reload; master-worker:
    master(cmd), show_proc(), workers(), send_worker(pid, cmd).
    """

    def __init__(self, version: str = "2.6", workdir=None, backends=None,
                 binary=None, extra_global=(), extra_defaults=(),
                 auto_fetch: bool = True, start_timeout: float = 10.0,
                 master_worker: bool = False, server_state_file: bool = False):
        self.version_line = version
        self.binary = Path(binary) if binary else find_binary(version, auto_fetch)
        self.version = binary_version(self.binary)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="haproxy-lab-"))
        self.backends = normalize_backends(backends or DEFAULT_BACKENDS)
        self.extra_global = list(extra_global)
        self.extra_defaults = list(extra_defaults)
        self.start_timeout = start_timeout
        self.stats_user, self.stats_password = STATS_USER, STATS_PASSWORD
        self.admin_socket = str(self.workdir / "admin.sock")
        self.operator_socket = str(self.workdir / "operator.sock")
        self.config_path = self.workdir / "haproxy.cfg"
        self.log_path = self.workdir / "haproxy.log"
        self.master_worker = master_worker
        self.master_socket = str(self.workdir / "master.sock") if master_worker else None
        self.server_state_path = self.workdir / "server-state" if server_state_file else None
        self.apps: dict[str, AppServer] = {}
        self.agents: dict[str, AgentServer] = {}
        self.dead_ports: dict[str, int] = {}     # server name -> closed port
        self.process: subprocess.Popen | None = None
        self.old_processes: list[subprocess.Popen] = []
        self._log = None
        self._check_socket_paths()

    # --- endpoints

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def tcp_socket(self) -> str:
        return f"tcp://{LOCALHOST}:{self.tcp_port}"

    @property
    def frontend_url(self) -> str:
        return f"http://{LOCALHOST}:{self.frontend_port}/"

    @property
    def stats_url(self) -> str:
        return f"http://{LOCALHOST}:{self.stats_port}/stats"

    @property
    def stats_url_readonly(self) -> str:
        return f"http://{LOCALHOST}:{self.stats_ro_port}/stats"

    def app(self, name: str) -> AppServer:
        return self.apps[name]

    def agent(self, name: str) -> AgentServer:
        return self.agents[name]

    def server_address(self, srv: dict) -> str:
        """"127.0.0.1:PORT" a configured server points to."""
        if srv["app"] is None:
            port = self.dead_ports.setdefault(srv["name"], free_port())
            return f"{LOCALHOST}:{port}"
        return self.apps[srv["app"]].address

    def addr(self, server: str, backend: str | None = None) -> tuple[str, int]:
        """(host, port) of a configured server (first backend holding it
        unless backend is given), or of an app started with add_app()."""
        for bname, spec in self.backends.items():
            if backend in (None, bname):
                for srv in spec["servers"]:
                    if srv["name"] == server:
                        host, _, port = self.server_address(srv).rpartition(":")
                        return host, int(port)
        if server in self.apps:
            return LOCALHOST, self.apps[server].port
        raise LabError(f"no server {server!r} in the lab")

    def endpoints(self) -> dict:
        """Everything a client needs, as a plain dict (also for the CLI)."""
        return {
            "version": self.version, "binary": str(self.binary), "pid": self.pid,
            "admin_socket": self.admin_socket, "operator_socket": self.operator_socket,
            "tcp_socket": self.tcp_socket, "frontend_url": self.frontend_url,
            "stats_url": self.stats_url, "stats_url_readonly": self.stats_url_readonly,
            "stats_user": self.stats_user, "stats_password": self.stats_password,
            "master_socket": self.master_socket,
            "config": str(self.config_path), "log": str(self.log_path),
            "servers": {b: {s["name"]: self.server_address(s) for s in spec["servers"]}
                        for b, spec in self.backends.items()},
        }

    # --- lifecycle

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self, attempts: int = 3) -> "HAProxyLab":
        _LIVE_LABS.add(self)
        try:
            self._start_apps()
            for attempt in range(attempts):
                self._pick_ports()
                self.config_path.write_text(render_config(self))
                if self._start_haproxy(last=attempt == attempts - 1):
                    return self
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop haproxy and every app; remove our temporary workdir. Idempotent."""
        self._stop_haproxy()
        for app in self.apps.values():
            app.stop()
        for agent in self.agents.values():
            agent.stop()
        if self._own_workdir and os.environ.get("HAPROXY_LAB_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)
        _LIVE_LABS.discard(self)

    def _check_socket_paths(self):
        longest = max(len(self.admin_socket), len(self.operator_socket),
                      len(self.master_socket or ""))
        if longest > MAX_SOCKET_PATH:
            raise LabError(f"workdir {self.workdir} is too long for unix sockets "
                           f"({longest} > {MAX_SOCKET_PATH} bytes); use a shorter one")

    def _start_apps(self):
        flag_dir = self.workdir / "apps"
        flag_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.backends.values():
            for srv in spec["servers"]:
                name = srv["app"]
                if name is not None and name not in self.apps:
                    self.apps[name] = AppServer(name, flag_dir)
                    self.apps[name].start()
                host = name or srv["name"]
                if srv["agent"] is not None and host not in self.agents:
                    self.agents[host] = AgentServer(host, srv["agent"])
                    self.agents[host].start()

    def _pick_ports(self):
        self.frontend_port = free_port()
        self.stats_port = free_port()
        self.stats_ro_port = free_port()
        self.tcp_port = free_port()

    def _start_haproxy(self, last: bool) -> bool:
        """Start haproxy; True once the admin socket answers, False on a
        port clash (caller retries), LabError otherwise."""
        self._log = open(self.log_path, "ab")
        if self.master_worker:
            # The master stays in the foreground without -D, and its workers
            # exit when it does.
            command = ["-W", "-S", self.master_socket]
        else:
            command = ["-db"]
        self.process = self._spawn(command)
        try:
            wait_until(self._socket_answers_or_exited, timeout=self.start_timeout,
                       interval=0.02, what=f"haproxy admin socket {self.admin_socket}")
        except TimeoutError:
            self._stop_haproxy()
            raise LabError(f"haproxy did not answer on {self.admin_socket}; "
                           f"log:\n{self._log_tail()}") from None
        if self.process.poll() is None:
            return True
        log = self._log_tail()
        self._stop_haproxy()
        if "cannot bind socket" in log and not last:
            return False
        raise LabError(f"haproxy {self.version} exited at start; config "
                       f"{self.config_path}; log:\n{log}")

    def _spawn(self, options: list[str]) -> subprocess.Popen:
        """Start haproxy with these options and our config, logging to log_path."""
        use_pdeathsig = threading.current_thread() is threading.main_thread()
        return subprocess.Popen(
            [str(self.binary), *options, "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=self.workdir,
            # PDEATHSIG fires when the creating *thread* exits, so only use it
            # from the main thread.
            preexec_fn=_set_pdeathsig if use_pdeathsig else None)

    def _socket_answers_or_exited(self) -> bool:
        if self.process.poll() is not None:
            return True
        try:
            if "Name: HAProxy" not in self.send("show info", timeout=1):
                return False
            return not self.master_worker or "master" in self.master("show proc", timeout=1)
        except OSError:
            return False

    def _stop_haproxy(self):
        procs = [self.process, *self.old_processes]
        self.process, self.old_processes = None, []
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()              # SIGTERM: haproxy's hard stop
        for proc in procs:
            if proc is None:
                continue
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log:
            self._log.close()
            self._log = None

    def _log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return "(no log)"

    # --- runtime API

    def send_raw(self, command: str, socket_path: str | None = None,
                 timeout: float = 10.0) -> bytes:
        """Send one command line; return the reply's exact bytes.

        socket_path: a unix socket path or "tcp://HOST:PORT"; default the
        admin unix socket.  One command per connection (non-interactive).
        """
        target = socket_path or self.admin_socket
        if target.startswith("tcp://"):
            host, _, port = target[len("tcp://"):].rpartition(":")
            sock = socket.create_connection((host, int(port)), timeout=timeout)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(target)
            except OSError:
                sock.close()
                raise
        with sock:
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def send(self, command: str, socket_path: str | None = None,
             timeout: float = 10.0) -> str:
        """Like send_raw() but decoded to text."""
        return self.send_raw(command, socket_path, timeout).decode(errors="replace")

    def show_stat(self, backend: str | None = None) -> list[dict]:
        """`show stat` rows (servers of one backend when backend is given)."""
        cmd = f"show stat {backend} 4 -1" if backend else "show stat"
        return parse_csv_stat(self.send(cmd))

    def servers_state(self, backend: str | None = None) -> list[dict]:
        """`show servers state [backend]` rows as dicts."""
        return parse_servers_state(self.send(f"show servers state {backend or ''}".strip()))

    def server_stat(self, backend: str, server: str) -> dict:
        for row in self.show_stat(backend):
            if row["svname"] == server:
                return row
        raise LabError(f"no server {backend}/{server} in show stat")

    def wait_servers_up(self, timeout: float = 10.0):
        """Wait until every checked server that can be UP is UP and has
        passed a check (L7OK).  Servers in MAINT (e.g. `disabled`), servers
        with no app behind them and apps marked unhealthy are not waited for."""
        def expected(row) -> bool:
            app = self._app_of(row["pxname"], row["svname"])
            return (row["check_status"] != "" and not row["status"].startswith("MAINT")
                    and app is not None and app.running and app.is_healthy())

        def all_up():
            rows = [r for r in self.show_stat() if r["type"] == "2" and expected(r)]
            return all(r["status"] in ("UP", "DRAIN") and r["check_status"] == "L7OK"
                       for r in rows)
        wait_until(all_up, timeout=timeout, interval=0.05, what="servers UP")

    def _app_of(self, backend: str, server: str) -> AppServer | None:
        for srv in self.backends.get(backend, {}).get("servers", []):
            if srv["name"] == server:
                return self.apps.get(srv["app"]) if srv["app"] else None
        return self.apps.get(server)     # runtime-added: app named like it

    def wait_status(self, backend: str, server: str, status: str,
                    timeout: float = 10.0) -> dict:
        """Wait until `show stat` shows this status (e.g. "DOWN") for the server."""
        def reached():
            row = self.server_stat(backend, server)
            return row if row["status"] == status else None
        return wait_until(reached, timeout=timeout, interval=0.05,
                          what=f"{backend}/{server} status {status}")

    # --- reloads, master-worker mode, server-state-file

    def reload(self, how: str | None = None, timeout: float = 10.0) -> "Reload":
        """Reload haproxy the way production does; return once the new
        worker (or process) answers on the admin socket.

        how: "master-cli" (`reload` on the master CLI) or "signal" (SIGUSR2
        to the master, what `systemctl reload` does) in master_worker mode;
        "sf" otherwise: a new process with `-sf <old pid>`, the classic
        init-script reload (`haproxy -D -p pidfile -sf $(cat pidfile)`).
        The lab keeps the new process in the foreground (-db) so that it
        stays our child and dies with us; -D would only detach it, the -sf
        hand-over is the same.  The old worker (process) finishes the
        connections it holds and then exits: see workers() / old_processes.
        Runtime states are lost unless server_state_file is on and
        save_server_state() ran before the reload.
        """
        how = how or ("master-cli" if self.master_worker else "sf")
        if (how == "sf") == self.master_worker:
            mode = "master-worker" if self.master_worker else "single-process"
            raise LabError(f"reload {how!r} does not apply to a {mode} lab")
        before = self._admin_pid()
        old_pids = [w["pid"] for w in self.workers()] if self.master_worker else [before]
        started = time.monotonic()
        reply = ""
        if how == "master-cli":
            reply = self.master("reload", timeout=timeout)
            if reply.startswith("Success=0"):
                raise LabError(f"reload failed:\n{reply}")
        elif how == "signal":
            os.kill(self.process.pid, signal.SIGUSR2)
        elif how == "sf":
            self.old_processes.append(self.process)
            self.process = self._spawn(["-db", "-sf", str(before)])
        else:
            raise LabError(f"unknown reload {how!r}; use master-cli, signal or sf")
        new_pid = wait_until(lambda: self._admin_pid_other_than(before), timeout=timeout,
                             interval=0.02, what=f"a new haproxy process after reload ({how})")
        seconds = time.monotonic() - started
        if self.master_worker:
            # The master re-executes itself on a reload; its CLI can refuse
            # connections for a moment after the new worker already answers
            # (seen on 3.0 after SIGUSR2).
            wait_until(lambda: self._master_lists_worker(new_pid), timeout=timeout,
                       interval=0.02, what=f"the master CLI listing worker {new_pid}")
        return Reload(how, reply, old_pids, new_pid, seconds)

    def _master_lists_worker(self, pid: int) -> bool:
        try:
            return any(w["pid"] == pid and w["role"] == "current" for w in self.show_proc())
        except OSError:
            return False

    def _admin_pid(self) -> int:
        """Pid of the process answering on the admin socket (the worker)."""
        match = re.search(r"^Pid: (\d+)", self.send("show info"), re.M)
        if not match:
            raise LabError("show info gave no Pid")
        return int(match.group(1))

    def _admin_pid_other_than(self, old_pid: int) -> int | None:
        if self.process.poll() is not None:
            raise LabError(f"haproxy exited during a reload; log:\n{self._log_tail()}")
        try:
            pid = self._admin_pid()
        except (OSError, LabError):      # the socket is being re-bound
            return None
        return pid if pid != old_pid else None

    def master(self, command: str, timeout: float = 10.0) -> str:
        """One command on the master CLI (master_worker mode); its reply.

        Prefixes reach a worker: "@1 show info" (the current one), "@!<pid>
        show stat" (any live worker, old ones included).
        """
        if not self.master_socket:
            raise LabError("no master CLI: start the lab with master_worker=True")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(self.master_socket)
            sock.sendall(command.encode() + b"\n")
            # The master CLI answers once our input has ended (without this
            # 2.6 keeps the connection open until its timeout).
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def show_proc(self) -> list[dict]:
        """`show proc` rows: pid, type ("master", "worker" or a program's
        name), reloads, uptime, version, and role: "master", "current"
        (workers), "old" (old workers, still finishing connections) or
        "program"."""
        roles = {"workers": "current", "old workers": "old", "programs": "program"}
        role, rows = "master", []
        for line in self.master("show proc").splitlines():
            if line.startswith("#"):
                role = roles.get(line[1:].strip(), role)
                continue
            words = line.split()
            if len(words) >= 5:
                rows.append({"pid": int(words[0]), "type": words[1], "reloads": int(words[2]),
                             "uptime": words[-2], "version": words[-1], "role": role})
        return rows

    def workers(self) -> list[dict]:
        """The live workers (show_proc rows): the current one first, then
        old ones that still hold connections after a reload."""
        rows = self.show_proc()
        return ([r for r in rows if r["role"] == "current"]
                + [r for r in rows if r["role"] == "old"])

    def send_worker(self, pid: int, command: str) -> str:
        """A command to one worker through the master CLI (`@!<pid> cmd`)."""
        return self.master(f"@!{pid} {command}")

    def save_server_state(self) -> str:
        """Write `show servers state` to the server-state-file (atomically),
        for the next reload to load; return what was written."""
        if not self.server_state_path:
            raise LabError("no server-state-file: start the lab with server_state_file=True")
        state = self.send("show servers state")
        tmp = self.server_state_path.with_name(self.server_state_path.name + ".tmp")
        tmp.write_text(state)
        os.replace(tmp, self.server_state_path)
        return state

    # --- traffic

    def request(self, path: str = "/", server: str | None = None,
                backend: str | None = None, headers: dict | None = None,
                method: str = "GET", timeout: float = 10.0):
        """One request through the frontend: (status, headers dict, body text)."""
        conn = http.client.HTTPConnection(LOCALHOST, self.frontend_port, timeout=timeout)
        try:
            conn.request(method, path, headers=self._route_headers(server, backend, headers))
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()

    def hold(self, server: str, seconds: float = 60.0, backend: str | None = None,
             headers: dict | None = None) -> HeldRequest:
        """Open a /slow request routed to this server and keep it open.

        Returns once the app holds it, so haproxy's scur for the server is 1.
        The request ends after `seconds`, or at held.release().
        """
        held = HeldRequest(self, f"/slow?seconds={seconds}",
                           self._route_headers(server, backend, headers),
                           timeout=seconds + 30)
        return held.start()

    @staticmethod
    def _route_headers(server, backend, headers) -> dict:
        result = dict(headers or {})
        if server:
            result["X-Server"] = server
        if backend:
            result["X-Backend"] = backend
        return result

    # --- apps

    def set_health(self, name: str, ok: bool):
        """Make app `name`'s /health pass or fail (checks see it within ~0.5 s)."""
        self.apps[name].set_healthy(ok)

    def add_app(self, name: str) -> AppServer:
        """Start an extra app server that is not in the config (for `add server`)."""
        if name in self.apps:
            raise LabError(f"app {name} already exists")
        app = AppServer(name, self.workdir / "apps")
        app.start()
        self.apps[name] = app
        return app

    # --- stats page

    def stats_post(self, fields: list[tuple[str, str]], readonly: bool = False,
                   auth: tuple[str, str] | None = (STATS_USER, STATS_PASSWORD),
                   backend_path: str = "/stats"):
        """POST the stats page admin form; return (status, headers, raw head bytes).

        Redirects are not followed: the result code is in the `location`
        header (e.g. "/stats;st=DONE").
        """
        port = self.stats_ro_port if readonly else self.stats_port
        body = urllib.parse.urlencode(fields).encode()
        head = {"Content-Type": "application/x-www-form-urlencoded"}
        if auth:
            token = b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            head["Authorization"] = f"Basic {token}"
        conn = http.client.HTTPConnection(LOCALHOST, port, timeout=10)
        try:
            conn.request("POST", backend_path, body=body, headers=head)
            resp = conn.getresponse()
            resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()

    def stats_get(self, path: str = "/stats;csv", readonly: bool = False,
                  auth: tuple[str, str] | None = (STATS_USER, STATS_PASSWORD)):
        """GET from the stats page: (status, headers, body bytes)."""
        port = self.stats_ro_port if readonly else self.stats_port
        head = {}
        if auth:
            head["Authorization"] = "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        conn = http.client.HTTPConnection(LOCALHOST, port, timeout=10)
        try:
            conn.request("GET", path, headers=head)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


# --------------------------------------------------------------------------
# CLI


def _print_endpoints(lab: HAProxyLab):
    info = lab.endpoints()
    servers = info.pop("servers")
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    for backend, members in servers.items():
        for name, addr in members.items():
            print(f"{'server':<{width}}  {backend}/{name} -> {addr}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="2.6", choices=sorted(BINARIES),
                        help="HAProxy version line (default 2.6)")
    parser.add_argument("--workdir", help="keep config, sockets and logs here")
    parser.add_argument("--master-worker", action="store_true",
                        help="run as haproxy -W -S <workdir>/master.sock (master CLI)")
    parser.add_argument("--server-state-file", action="store_true",
                        help="configure server-state-file + load-server-state-from-file")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the lab and print its endpoints until Ctrl-C")
    sub.add_parser("config", help="print the generated configuration and exit")
    args = parser.parse_args(argv)

    lab = HAProxyLab(version=args.version, workdir=args.workdir, master_worker=args.master_worker,
                     server_state_file=args.server_state_file)
    if args.command == "config":
        lab._start_apps()
        lab._pick_ports()
        print(render_config(lab), end="")
        lab.stop()
        return 0
    with lab:
        lab.wait_servers_up()
        _print_endpoints(lab)
        print("running; Ctrl-C to stop", flush=True)
        # SIGTERM ends the lab like Ctrl-C does (with cleanup).
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
