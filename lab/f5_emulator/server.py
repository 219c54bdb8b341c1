"""The emulator's HTTP(S) server and command line.

    python3 -m lab.f5_emulator [--port 0] [--state seed.json] [--drain-rate N|hold] [--http]
    python3 lab/f5_emulator/server.py ...          (the same)

When ready it prints one JSON line on stdout:
{"url": ..., "port": ..., "ca_cert": ..., "pid": ..., "control": ...}
and serves until SIGTERM or SIGINT.
"""
if __name__ == "__main__" and not __package__:
    # Started as a file: import the package properly and run it from there.
    import os
    import runpy
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    runpy.run_module("lab.f5_emulator", run_name="__main__")
    sys.exit(0)

import argparse
import io
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from . import control, rest, soap
from .errors import F5Error, mcpd_lost
from .rest import Response
from .state import State, parse_drain_rate
from .tls import make_self_signed, server_context

RESTARTING_HTML = ("<html><head><title>Configuration Utility restarting...</title></head>"
                   "<body>Configuration Utility restarting...</body></html>\n")


def _redact(body):
    if isinstance(body, dict) and "password" in body:
        return dict(body, password="********")
    return body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive, as clients with sessions expect
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus the
    # client's delayed ACK stall every keep-alive answer by ~40 ms, which no
    # device does (and which would swamp request timings in benchmarks).
    disable_nagle_algorithm = True

    def version_string(self):
        return "emulated-BIG-IP"

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("f5-emulator: %s\n" % (fmt % args))

    # --- one request ---------------------------------------------------------

    def _serve(self, method):
        state = self.server.state
        split = urlsplit(self.path)
        path, raw_query = split.path, split.query
        query = parse_qs(raw_query, keep_blank_values=True)
        raw = self._read_body()

        if path == "/_emulator" or path.startswith("/_emulator/"):
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return self._send(Response(400, {"error": "the body is not JSON"}))
            with state.lock:
                return self._send(control.handle(state, method, path, query, body))

        fault = state.faults.take(method, path, unquote(path))
        trickle = None
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)
            fault = None
        if fault and fault.kind == "trickle":
            trickle, fault = fault.seconds, None
        if fault and fault.kind == "reset":
            state.requests.record(method, path, raw_query, 0, None, state.now())
            return self._reset()

        body = None
        if fault:
            response = self._fault_response(fault)
        elif path.startswith(soap.PORTAL):
            response = soap.handle(state, method, query, self.headers, raw, self.headers.get("Host", "localhost"))
        elif path.startswith("/mgmt/"):
            response, body = self._rest(state, method, path, query, raw)
        else:
            response = Response(404, "<html><body><h1>404 Not Found</h1></body></html>\n")
        state.requests.record(method, path, raw_query, response.status, _redact(body), state.now())
        self._send(response, trickle)

    def _rest(self, state, method, path, query, raw):
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return Response(400, {"code": 400, "message": "Found invalid JSON body in the request.",
                                  "errorStack": [], "apiError": 1}), None
        headers = {k: self.headers.get(k) for k in ("X-F5-Auth-Token", "Authorization",
                                                    "X-F5-REST-Coordination-Id") if self.headers.get(k)}
        req = rest.Request(method, path, query, headers, body, self.client_address[0])
        with state.lock:
            try:
                return rest.handle(state, req), body
            except F5Error as exc:
                return Response(exc.status, exc.body, dict(exc.headers)), body

    @staticmethod
    def _fault_response(fault):
        if fault.kind == "mcpd":
            exc = mcpd_lost()
            return Response(exc.status, exc.body)
        if fault.kind == "restarting":
            return Response(503, RESTARTING_HTML)
        return Response(fault.status, fault.body)

    # --- wire ----------------------------------------------------------------

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, response, trickle=None):
        headers = dict(response.headers)
        if isinstance(response.body, (dict, list)):
            # Compact like a device: clients grep for '"message":"..."' verbatim.
            data = json.dumps(response.body, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json; charset=UTF-8")
        elif isinstance(response.body, str):
            data = response.body.encode()
            headers.setdefault("Content-Type", "text/html; charset=UTF-8")
        else:
            data = response.body or b""
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if trickle is None:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        # A device that is alive but answers a byte at a time: status line,
        # headers and body, one byte every `trickle` seconds.
        self._headers_buffer.append(b"\r\n")
        raw = b"".join(self._headers_buffer) + (data if self.command != "HEAD" else b"")
        self._headers_buffer = []
        try:
            for index in range(len(raw)):
                self.wfile.write(raw[index:index + 1])
                self.wfile.flush()
                time.sleep(trickle)
        except OSError:
            self.close_connection = True

    def _reset(self):
        """Drop the connection with a TCP reset, as a device losing mcpd can."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass
        self.wfile = io.BytesIO()   # nothing left for finish() to flush


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state, host="127.0.0.1", port=0, ssl_context=None, verbose=False):
        self.state = state
        self.ssl_context = ssl_context
        self.verbose = verbose
        super().__init__((host, port), Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # Handshake lazily in the worker thread, so one slow client cannot
            # hold up the accept loop.
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)) and not self.verbose:
            return
        super().handle_error(request, client_address)


def create_server(state, host="127.0.0.1", port=0, https=True, cert_dir=None, verbose=False):
    """A bound, not yet serving, server and its ready-line info."""
    ca_cert = None
    context = None
    if https:
        ca_cert, key = make_self_signed(cert_dir or tempfile.mkdtemp(prefix="f5-emulator-"), host)
        context = server_context(ca_cert, key)
    server = EmulatorServer(state, host, port, context, verbose)
    port = server.server_address[1]
    url = "%s://%s:%d" % ("https" if https else "http", host, port)
    info = {"url": url, "port": port, "ca_cert": ca_cert, "pid": os.getpid(), "control": url + "/_emulator"}
    return server, info


def build_parser():
    parser = argparse.ArgumentParser(prog="python3 -m lab.f5_emulator",
                                     description="F5 BIG-IP iControl REST/SOAP emulator (not a device).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--state", metavar="SEED.json", help="seed document to load at start")
    parser.add_argument("--drain-rate", default="1", type=parse_drain_rate,
                        help="connections per second a disabled member loses, or 'hold' (default 1)")
    parser.add_argument("--http", action="store_true", help="serve plain HTTP instead of HTTPS")
    parser.add_argument("--token-timeout", type=int, help="lifetime of new tokens in seconds (default 1200)")
    parser.add_argument("--max-tokens", type=int, help="active tokens allowed per user (default 100)")
    parser.add_argument("--version", dest="tmos_version", help="TMOS version to report (default 15.1.10)")
    parser.add_argument("--verbose", action="store_true", help="log each request on stderr")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    state = State(drain_rate=args.drain_rate)
    if args.tmos_version:
        state.version = args.tmos_version
    if args.token_timeout:
        state.tokens.default_timeout = args.token_timeout
    if args.max_tokens:
        state.tokens.max_per_user = args.max_tokens
    if args.state:
        with open(args.state) as fh:
            state.seed(json.load(fh))
    cert_dir = None if args.http else tempfile.mkdtemp(prefix="f5-emulator-")
    server, info = create_server(state, args.host, args.port, not args.http, cert_dir, args.verbose)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    print(json.dumps(info), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if cert_dir:
            shutil.rmtree(cert_dir, ignore_errors=True)
    return 0
