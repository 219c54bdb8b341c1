#!/usr/bin/env python3
"""A small HTTP/1.1 application server for the gentle.lb lab.

It stands in for the application servers a rolling deploy replaces: it tells
which version and instance answered, can hold a request open like a slow real
request, has a health check a load balancer can probe, and shuts down the way
real servers do (see "SIGTERM" below), so that restarting it *without*
draining it first visibly fails requests, and restarting it after a drain
fails none.

    python3 lab/app/app.py --port P --version v1 [--bind 127.0.0.1] [--name web1]
        [--pidfile F] [--health-file PATH] [--broken] [--error-every N] [--keepalive-timeout S]
        [--grace S] [--verbose]

Endpoints (GET, HEAD and OPTIONS; every response carries X-App-Version and
X-App-Name):

    /            200 JSON {"version", "name", "pid"}
    /slow?ms=N   the same, answered after N ms (capped at 60 s); with
                 &until=PATH, as soon as that file exists (tests release a
                 held request exactly when they want)
    /health      200 "OK <version>"; 503 "DRAINING <version> ..." while the
                 --health-file is missing (the health_file drain pattern);
                 503 "BROKEN <version>" for a broken build (--broken or a
                 version ending in "-broken")

A version named like "v2-errors10" (or --error-every 10) is a build that
passes its health check but answers every 10th request to / and /slow with
500 "ERROR <version>" (counted per process, so over many requests it is 10%
of them): the bad release only traffic reveals, for the role's analysis gate.
lab/app/ctl.py passes the version through unchanged, so a deploy of
"v2-errors10" is all a test needs.
    /version     200 "<version>" whatever the health (deploy tools use it to
                 know the new build is up even while it is drained)

SIGTERM (or SIGINT): the listening socket is closed at once (new connections
are refused), requests in flight are finished and answered with
"Connection: close", idle keep-alive connections are closed (a connection
accepted just before, with no request yet, gets 1 s to send one), and the
process exits when no request is left (bounded by --grace).  Closing idle keep-alive
connections is what real servers do, and it is exactly what makes an
undrained restart fail the requests clients were about to send on them.

Stdlib only; runs on Python 3.11+.
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_SLOW_MS = 60_000

# Connection states tracked for the graceful shutdown.
NEW = "new"  # accepted, first request not read yet
IDLE = "idle"  # waiting for the next request on a keep-alive connection
BUSY = "busy"  # a request has been read and is being answered

# On SIGTERM a connection accepted just before the listener closed still gets
# this long to send its first request (its client did nothing wrong), as Go's
# http.Server.Shutdown does; then it is closed like an idle one.
NEW_CONN_GRACE = 1.0


def is_broken_version(version):
    """A version named like "v2-broken" is a build that fails its health check."""
    return version.endswith("-broken")


def error_every(version):
    """A version named like "v2-errors10" answers every 10th app request with a 500 (0: never)."""
    head, sep, tail = version.rpartition("-errors")
    return int(tail) if sep and head and tail.isdigit() else 0


class AppServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its connections, for a graceful stop."""

    # A restart on the same port must bind at once even with connections of
    # the previous process in TIME_WAIT (HTTPServer sets it too; say it here).
    allow_reuse_address = True
    daemon_threads = True
    # Default 5 is far too small for a burst of new connections under load.
    request_queue_size = 128

    def __init__(self, address, config):
        self.config = config
        self.counter_lock = threading.Lock()
        self.app_requests = 0  # requests to / and /slow, for --error-every
        self.draining = False
        self.conns = {}  # handler -> NEW | IDLE | BUSY
        self.conns_lock = threading.Lock()
        self.conns_empty = threading.Condition(self.conns_lock)
        super().__init__(address, AppHandler)

    def handle_error(self, request, client_address):
        # A client that resets or drops its connection is normal under load
        # (HAProxy ends every health check with a RST): no traceback for it.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    # -- connection bookkeeping (called from handler threads) --

    def track(self, handler, state):
        """Record a connection's state; False means: close it, we are stopping."""
        with self.conns_lock:
            self.conns[handler] = state
            # A request read after the drain began is still answered (the
            # client sent it in good faith), and a NEW connection may still
            # send its first one; an IDLE keep-alive connection is not kept.
            return not (self.draining and state == IDLE)

    def forget(self, handler):
        with self.conns_lock:
            self.conns.pop(handler, None)
            if not self.conns:
                self.conns_empty.notify_all()

    # -- graceful stop (called from the main thread) --

    def begin_drain(self):
        """Refuse new connections; close idle ones; let busy ones finish.

        Returns the number of connections per state at that moment.
        """
        self.shutdown()  # stop the accept loop (serve_forever)
        self.server_close()  # close the listening socket: new connects are refused
        with self.conns_lock:
            self.draining = True
            counts = {state: list(self.conns.values()).count(state) for state in (NEW, IDLE, BUSY)}
            self._close_reading(IDLE)
        return counts

    def _close_reading(self, state):
        """Wake the threads waiting for a request on connections in `state` (lock held)."""
        for handler, current in self.conns.items():
            if current == state:
                # SHUT_RD makes the blocked read return EOF, so the handler
                # closes the connection; unlike SHUT_RDWR it still lets a
                # request that raced in be answered.
                try:
                    handler.connection.shutdown(socket.SHUT_RD)
                except OSError:
                    pass

    def wait_idle(self, timeout):
        """Wait until every connection is closed; False if the grace ran out."""
        now = time.monotonic()
        deadline, new_deadline = now + timeout, now + min(NEW_CONN_GRACE, timeout)
        with self.conns_lock:
            while self.conns:
                now = time.monotonic()
                if now >= deadline:
                    return False
                if new_deadline is not None and now >= new_deadline:
                    self._close_reading(NEW)  # they had their chance
                    new_deadline = None
                self.conns_empty.wait(min(deadline, new_deadline or deadline) - now)
        return True


class AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive by default
    server_version = "gentle-lb-lab-app"

    def setup(self):
        # Idle keep-alive connections are closed after this (and a request
        # must arrive within it), like any real server's keepalive timeout.
        self.timeout = self.server.config.keepalive_timeout
        super().setup()

    served = 0  # requests answered on this connection

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.forget(self)

    def handle_one_request(self):
        if not self.server.track(self, IDLE if self.served else NEW):
            self.close_connection = True
            return
        super().handle_one_request()
        self.served += 1

    def parse_request(self):
        # Called once the request line has been read: the connection is busy.
        self.server.track(self, BUSY)
        return super().parse_request()

    # -- routing --

    def do_GET(self):
        self.route(send_body=True)

    def do_HEAD(self):
        self.route(send_body=False)

    # HAProxy's default `option httpchk` probe is "OPTIONS /": answer it like GET.
    def do_OPTIONS(self):
        self.route(send_body=True)

    def route(self, send_body):
        url = urlsplit(self.path)
        if url.path == "/":
            self.answer_app(send_body)
        elif url.path == "/slow":
            query = parse_qs(url.query)
            self.hold(query.get("ms", ["1000"])[0], query.get("until", [None])[0])
            self.answer_app(send_body)
        elif url.path == "/health":
            self.answer_health(send_body)
        elif url.path == "/version":
            self.reply(200, self.server.config.version + "\n", "text/plain", send_body)
        else:
            self.reply(404, "not found\n", "text/plain", send_body)

    def hold(self, ms_text, until=None):
        """Hold the response like a slow real request (a plain sleep), or
        until the file ``until`` appears."""
        try:
            ms = min(max(int(ms_text), 0), MAX_SLOW_MS)
        except ValueError:
            ms = 1000
        deadline = time.monotonic() + ms / 1000.0
        while time.monotonic() < deadline and not (until and os.path.exists(until)):
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))

    def answer_app(self, send_body):
        cfg = self.server.config
        if cfg.error_every > 0:
            with self.server.counter_lock:
                self.server.app_requests += 1
                failing = self.server.app_requests % cfg.error_every == 0
            if failing:
                self.reply(500, f"ERROR {cfg.version}\n", "text/plain", send_body)
                return
        body = json.dumps({"version": cfg.version, "name": cfg.name, "pid": os.getpid()})
        self.reply(200, body + "\n", "application/json", send_body)

    def answer_health(self, send_body):
        cfg = self.server.config
        if cfg.broken:
            self.reply(503, f"BROKEN {cfg.version}\n", "text/plain", send_body, health="broken")
        elif cfg.health_file and not os.path.exists(cfg.health_file):
            text = f"DRAINING {cfg.version}: {cfg.health_file} is missing\n"
            self.reply(503, text, "text/plain", send_body, health="draining")
        else:
            self.reply(200, f"OK {cfg.version}\n", "text/plain", send_body, health="ok")

    def reply(self, status, text, ctype, send_body, health=None):
        cfg = self.server.config
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Version", cfg.version)
        self.send_header("X-App-Name", cfg.name)
        if health:
            self.send_header("X-App-Health", health)
        if self.server.draining:
            # Tell the client this connection ends here (send_header also sets
            # self.close_connection), so it does not send another request on it.
            self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def log_message(self, fmt, *args):
        # An access log per request would cost more than the request itself
        # under load; --verbose turns it on for debugging.
        if self.server.config.verbose:
            super().log_message(fmt, *args)


# -- process lifecycle --


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="gentle.lb lab application server")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--version", required=True, help='e.g. v1; "v2-broken" fails /health')
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--name", default=None, help="instance name (default: app-PORT)")
    p.add_argument("--pidfile", default=None)
    p.add_argument("--health-file", default=None, help="/health is 503 while this file is missing")
    p.add_argument("--broken", action="store_true", help="/health always answers 503")
    p.add_argument("--error-every", type=int, default=0,
                   help='answer every Nth request to / with 500 (also a version like "v2-errors10")')
    p.add_argument("--keepalive-timeout", type=float, default=15.0, help="idle keep-alive close, s")
    p.add_argument("--grace", type=float, default=30.0, help="max s to finish requests on SIGTERM")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    cfg = p.parse_args(argv)
    cfg.name = cfg.name or f"app-{cfg.port}"
    cfg.broken = cfg.broken or is_broken_version(cfg.version)
    cfg.error_every = cfg.error_every or error_every(cfg.version)
    return cfg


def write_pidfile(path):
    """Write our pid atomically so a reader never sees a half-written file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def remove_pidfile(path):
    """Remove the pidfile only if it is still ours (a successor may own it)."""
    try:
        with open(path) as f:
            if f.read().strip() == str(os.getpid()):
                os.unlink(path)
    except OSError:
        pass


def log(cfg, msg):
    print(f"app {cfg.name} {cfg.version} pid {os.getpid()}: {msg}", file=sys.stderr, flush=True)


def main(argv=None):
    cfg = parse_args(argv)
    try:
        server = AppServer((cfg.bind, cfg.port), cfg)
    except OSError as exc:
        log(cfg, f"cannot listen on {cfg.bind}:{cfg.port}: {exc}")
        return 1

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    # serve_forever runs in a thread so the main thread stays free to react
    # to signals (shutdown() called from serve_forever's own thread deadlocks).
    # A short poll interval makes shutdown() (hence SIGTERM) take effect fast.
    accept = threading.Thread(target=server.serve_forever, args=(0.05,), name="accept", daemon=True)
    accept.start()
    if cfg.pidfile:
        write_pidfile(cfg.pidfile)
    print(f"READY {cfg.name} {cfg.version} http://{cfg.bind}:{cfg.port}/ pid {os.getpid()}", flush=True)

    while not stop.wait(0.5):
        pass

    started = time.monotonic()
    counts = server.begin_drain()
    log(cfg, f"stopping: listener closed, {counts[BUSY]} request(s) in flight, "
             f"{counts[IDLE]} idle connection(s) closed, {counts[NEW]} new connection(s) waited for")
    finished = server.wait_idle(cfg.grace)
    took = time.monotonic() - started
    if cfg.pidfile:
        remove_pidfile(cfg.pidfile)
    if finished:
        log(cfg, f"stopped after {took:.2f} s")
        return 0
    log(cfg, f"grace of {cfg.grace:g} s ran out; exiting with requests still open")
    return 1


if __name__ == "__main__":
    sys.exit(main())
