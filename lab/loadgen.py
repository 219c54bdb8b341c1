#!/usr/bin/env python3
"""Steady HTTP load for the gentle.lb lab, counting every failed request.

The rolling-deploy role is proven against this: it runs while every instance
behind the load balancer is drained, redeployed and restored, and the run
must end with "0 failed".  For that proof to mean something the generator
must be able to fail: it mixes requests on long-lived keep-alive connections
(the ones an undrained restart cuts) with requests on new connections (the
ones a closed listener refuses), and some slow requests (the ones a hard stop
kills mid-flight).

    python3 lab/loadgen.py --url http://127.0.0.1:PORT/
        [--duration S] [--until-file F] [--concurrency N] [--rate R]
        [--keepalive-share 0.5] [--slow-share 0.1] [--slow-ms 300]
        [--timeout S] [--strict-keepalive] [--json-out F]

It stops at --duration (a hard bound, default 300 s), when --until-file
exists, or on SIGTERM/SIGINT; requests in flight are finished first.  It
writes a JSON summary (--json-out, written atomically) and prints one line.
Exit status: 0 when at least one request was sent and none failed, 1 when any
failed (or none was sent), 2 for bad arguments.

What counts as a failure (the summary's "errors" maps kind -> count):

    refused                 connection refused (nothing listening)
    connect_timeout         no TCP connection within --timeout
    timeout                 no (complete) response within --timeout
    reset_before_response   RST before any response byte on a NEW connection,
                            or on a reused one when the retry fails too
    closed_before_response  FIN before any response byte (same rules)
    reset_mid_response      the response started but was cut off
    bad_response            not HTTP, or a malformed response
    http_NNN                any 4xx/5xx status, e.g. HAProxy's 502/503/504
    stale_keepalive         only with --strict-keepalive, see below
    error_<Name>            anything else (a bug to look at)

Stale keep-alive connections.  A server may close an idle keep-alive
connection at any time, and a client may send a request on it at the same
moment.  Well-behaved clients (browsers, curl, Go's net/http, urllib3 for
idempotent methods) handle this the way RFC 9112 section 9.3.1 allows: they
check the pooled connection is still open before reusing it, and if it was
closed before *any* byte of the response arrived, they resend the idempotent
request once on a new connection.  This generator does the same: those
retries are reported under "retried" and are not failures; only a retry
that fails again is.  A reset after the response started is always a failure,
as is every error on a new connection.  --strict-keepalive models a client
that does not retry: the stale connection counts as "stale_keepalive".
(Every request here is a GET, so the retry is always allowed.)

Stdlib only; runs on Python 3.11+.
"""

import argparse
import http.client
import json
import os
import random
import select
import signal
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

MAX_DURATION = 3600.0

# Errors that mean "the peer closed the connection" (RemoteDisconnected is a
# clean close before the status line; it subclasses ConnectionResetError).
CLOSED_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class RequestError(Exception):
    """A failed request: `kind` is the summary key, `retryable` per RFC 9112 9.3.1."""

    def __init__(self, kind, detail, retryable=False):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.retryable = retryable


def classify(exc, phase):
    """Map an exception raised in a request phase to a failure kind.

    phase: "connect", "send" (writing the request), "wait" (reading the status
    line and headers: no response byte is known to have arrived) or "body".
    """
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return "connect_timeout" if phase == "connect" else "timeout"
    if phase == "body" and isinstance(exc, (http.client.IncompleteRead, *CLOSED_ERRORS)):
        return "reset_mid_response"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed_before_response"
    if isinstance(exc, CLOSED_ERRORS):
        return "reset_before_response"
    if isinstance(exc, http.client.HTTPException):
        return "bad_response"
    return f"error_{type(exc).__name__}"


class Pacer:
    """Spreads request starts evenly so all workers together send `rate` per second."""

    def __init__(self, rate, stop):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.stop = stop
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def wait_turn(self):
        """Block until this caller may send; False once the run is stopping."""
        if self.interval:
            with self.lock:
                # A worker that was busy does not earn a burst: slots in the
                # past are skipped, not caught up.
                at = max(self.next_at, time.monotonic())
                self.next_at = at + self.interval
            delay = at - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                return False
        return not self.stop.is_set()


class Stats:
    """Thread-safe counters, a per-second timeline and a sample of failures."""

    MAX_SAMPLES = 20

    def __init__(self, t0):
        self.t0 = t0
        self.lock = threading.Lock()
        self.sent = self.ok = self.failed = 0
        self.errors = Counter()
        self.versions = Counter()
        self.retried = Counter()
        self.counters = Counter()  # informational: connections opened, etc.
        self.timeline = {}
        self.latencies = []
        self.samples = []

    def started(self):
        with self.lock:
            self.sent += 1

    def count(self, what, n=1):
        with self.lock:
            self.counters[what] += n

    def retry(self, kind):
        with self.lock:
            self.retried[kind] += 1

    def finished(self, started_at, version=None, error=None, path=""):
        now = time.monotonic()
        with self.lock:
            second = self.timeline.setdefault(
                int(now - self.t0), {"sent": 0, "ok": 0, "failed": 0, "versions": Counter(), "errors": Counter()}
            )
            second["sent"] += 1
            if error is None:
                self.ok += 1
                second["ok"] += 1
                self.versions[version] += 1
                second["versions"][version] += 1
                self.latencies.append(now - started_at)
                return
            self.failed += 1
            second["failed"] += 1
            self.errors[error.kind] += 1
            second["errors"][error.kind] += 1
            if len(self.samples) < self.MAX_SAMPLES:
                self.samples.append(
                    {"t": round(now - self.t0, 3), "kind": error.kind, "path": path, "detail": error.detail}
                )

    def summary(self, duration, load_seconds, config):
        with self.lock:
            timeline = [
                {"t": t, "sent": s["sent"], "ok": s["ok"], "failed": s["failed"],
                 "versions": dict(s["versions"]), "errors": dict(s["errors"])}
                for t, s in sorted(self.timeline.items())
            ]
            return {
                "sent": self.sent,
                "ok": self.ok,
                "failed": self.failed,
                "unfinished": self.sent - self.ok - self.failed,
                "errors": dict(self.errors),
                "versions": dict(self.versions),
                "retried": dict(self.retried),
                "connections": dict(self.counters),
                "duration": round(duration, 3),
                # Over the loaded period only, not the final wait for requests in flight.
                "rate": round(self.sent / load_seconds, 1) if load_seconds > 0 else 0.0,
                "latency_ms": latency_summary(self.latencies),
                "timeline": timeline,
                "failure_samples": list(self.samples),
                "config": config,
            }


def latency_summary(latencies):
    if not latencies:
        return {}
    ordered = sorted(latencies)

    def pick(q):
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": round(ordered[-1] * 1000, 2)}


class Worker(threading.Thread):
    """One client: a pooled keep-alive connection plus one-shot new connections."""

    def __init__(self, index, target, args, pacer, stats):
        super().__init__(name=f"loadgen-{index}", daemon=True)
        self.host, self.port, self.path = target
        self.args = args
        self.pacer = pacer
        self.stats = stats
        self.rng = random.Random(index)  # reproducible mix per worker
        self.pooled = None  # the keep-alive connection, when open
        # The socket timeout must let a deliberately slow request finish.
        self.timeout = args.timeout + args.slow_ms / 1000.0

    def run(self):
        try:
            while self.pacer.wait_turn():
                self.one_request()
        finally:
            self.drop_pooled()

    def one_request(self):
        slow = self.rng.random() < self.args.slow_share
        path = f"/slow?ms={self.args.slow_ms}" if slow else self.path
        keepalive = self.rng.random() < self.args.keepalive_share
        started_at = time.monotonic()
        self.stats.started()
        try:
            if keepalive:
                version = self.request_pooled(path)
            else:
                version = self.request_fresh(path)
        except RequestError as err:
            self.stats.finished(started_at, error=err, path=path)
        else:
            self.stats.finished(started_at, version=version)

    # -- the two kinds of request --

    def request_fresh(self, path):
        """One request on a new connection, closed afterwards (Connection: close)."""
        conn = self.open_connection()
        try:
            return exchange(conn, path, {"Connection": "close"}, reused=False)
        finally:
            conn.close()

    def request_pooled(self, path):
        """A request on the worker's persistent connection, retried once if stale."""
        reused = self.take_pooled()
        try:
            return exchange(self.pooled, path, {}, reused=reused)
        except RequestError as err:
            self.drop_pooled()
            if not (err.retryable and reused):
                raise
            if self.args.strict_keepalive:
                raise RequestError("stale_keepalive", err.detail) from None
            # Closed before any response byte: resend once, on a new connection.
            self.stats.retry("stale_keepalive")
            self.take_pooled()
            try:
                return exchange(self.pooled, path, {}, reused=False)
            except RequestError:
                self.drop_pooled()
                raise

    # -- connection handling --

    def take_pooled(self):
        """Make self.pooled usable; True when it is a reused connection."""
        if self.pooled is not None and self.pooled.sock is not None:
            if not peer_closed(self.pooled.sock):
                return True
            # The server closed it while idle (keepalive timeout, shutdown):
            # a client notices before sending, like urllib3 does.
            self.stats.count("closed_while_idle")
            self.drop_pooled()
        if self.pooled is not None:
            # http.client dropped the socket itself after "Connection: close".
            self.drop_pooled()
        self.pooled = self.open_connection()
        return False

    def drop_pooled(self):
        if self.pooled is not None:
            self.pooled.close()
            self.pooled = None

    def open_connection(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise RequestError(classify(exc, "connect"), str(exc)) from None
        self.stats.count("opened")
        return conn


def peer_closed(sock):
    """True if an idle connection is readable: the peer closed it (or misbehaved)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def exchange(conn, path, headers, reused):
    """Send one GET and read the whole response; return the X-App-Version seen.

    Raises RequestError; it is retryable when the connection was closed
    before any response byte arrived (only meaningful on a reused connection).
    """
    phase = "send"
    try:
        conn.request("GET", path, headers=headers)
        phase = "wait"
        resp = conn.getresponse()
        phase = "body"
        resp.read()
    except (OSError, http.client.HTTPException) as exc:
        kind = classify(exc, phase)
        retryable = reused and phase in ("send", "wait") and kind in (
            "reset_before_response", "closed_before_response")
        raise RequestError(kind, f"{type(exc).__name__}: {exc}", retryable) from None
    if resp.status >= 400:
        raise RequestError(f"http_{resp.status}", f"{resp.status} {resp.reason}")
    return resp.getheader("X-App-Version") or "none"


# -- command line and run --


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="gentle.lb lab load generator")
    p.add_argument("--url", required=True, help="http://HOST:PORT/PATH for the normal requests")
    p.add_argument("--duration", type=float, default=300.0,
                   help=f"hard maximum run time in s (default 300, at most {MAX_DURATION:g})")
    p.add_argument("--until-file", help="stop as soon as this file exists")
    p.add_argument("--concurrency", type=int, default=16, help="client threads (default 16)")
    p.add_argument("--rate", type=float, default=200.0, help="requests/s in total; 0 = unlimited")
    p.add_argument("--keepalive-share", type=float, default=0.5,
                   help="share of requests sent on a reused keep-alive connection")
    p.add_argument("--slow-share", type=float, default=0.1, help="share of requests to /slow")
    p.add_argument("--slow-ms", type=int, default=300, help="how long /slow holds a request")
    p.add_argument("--timeout", type=float, default=10.0, help="socket timeout in s (plus --slow-ms)")
    p.add_argument("--strict-keepalive", action="store_true",
                   help="no retry on a stale keep-alive connection: count it as a failure")
    p.add_argument("--json-out", help="write the JSON summary here")
    p.add_argument("--quiet", action="store_true", help="no start line on stderr")
    args = p.parse_args(argv)

    url = urlsplit(args.url)
    if url.scheme != "http" or not url.hostname:
        p.error(f"--url must be http://HOST:PORT/..., not {args.url!r}")
    if not 0 < args.duration <= MAX_DURATION:
        p.error(f"--duration must be in (0, {MAX_DURATION:g}]")
    for name in ("keepalive_share", "slow_share"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            p.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.concurrency < 1 or args.rate < 0 or args.slow_ms < 0 or args.timeout <= 0:
        p.error("--concurrency >= 1, --rate >= 0, --slow-ms >= 0 and --timeout > 0 please")
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    args.target = (url.hostname, url.port or 80, path)
    return args


def wait_for_stop(stop, args, t0):
    """Block the main thread until the duration, the until-file or a signal ends the run."""
    deadline = t0 + args.duration
    while not stop.is_set():
        if args.until_file and os.path.exists(args.until_file):
            return "until-file"
        left = deadline - time.monotonic()
        if left <= 0:
            return "duration"
        stop.wait(min(0.1, left))
    return "signal"


def write_json(path, data):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def human_line(s):
    line = f"loadgen: {s['sent']} sent, {s['ok']} ok, {s['failed']} failed"
    if s["errors"]:
        line += " (" + " ".join(f"{k}={v}" for k, v in sorted(s["errors"].items())) + ")"
    line += f" in {s['duration']:.1f} s ({s['rate']} req/s)"
    versions = " ".join(f"{k}={v}" for k, v in sorted(s["versions"].items())) or "none"
    line += f"; versions {versions}"
    if s["retried"]:
        line += "; retried " + " ".join(f"{k}={v}" for k, v in sorted(s["retried"].items()))
    if s["latency_ms"]:
        line += f"; p50 {s['latency_ms']['p50']} ms p99 {s['latency_ms']['p99']} ms"
    if s["unfinished"]:
        line += f"; {s['unfinished']} still running at exit"
    return line


def main(argv=None):
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    t0 = time.monotonic()
    stats = Stats(t0)
    pacer = Pacer(args.rate, stop)
    workers = [Worker(i, args.target, args, pacer, stats) for i in range(args.concurrency)]
    for w in workers:
        w.start()
    if not args.quiet:
        print(f"loadgen: started against {args.url} ({args.concurrency} clients, "
              f"{args.rate:g} req/s, at most {args.duration:g} s)", file=sys.stderr, flush=True)

    reason = wait_for_stop(stop, args, t0)
    stop.set()
    load_seconds = time.monotonic() - t0
    # Requests in flight are finished (each is bounded by its socket timeout).
    join_by = time.monotonic() + args.timeout + args.slow_ms / 1000.0 + 1.0
    for w in workers:
        w.join(max(0.0, join_by - time.monotonic()))
    duration = time.monotonic() - t0

    config = {k: getattr(args, k) for k in ("url", "duration", "concurrency", "rate", "keepalive_share",
                                             "slow_share", "slow_ms", "timeout", "strict_keepalive")}
    summary = stats.summary(duration, load_seconds, config)
    summary["stopped_by"] = reason
    if args.json_out:
        write_json(args.json_out, summary)
    print(human_line(summary), flush=True)
    return 0 if summary["sent"] and summary["failed"] == 0 and not summary["unfinished"] else 1


if __name__ == "__main__":
    sys.exit(main())
