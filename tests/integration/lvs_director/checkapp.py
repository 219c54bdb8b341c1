"""A real server whose health page can hang, for the keepalived lab.

    checkapp.py serve --name rs1 --bind 172.16.1.2 --http 80 [--https 443
                      --cert C --key K] [--host www.example.test] --state-dir D
    checkapp.py get URL [--count N] [--host H] [--insecure]
    checkapp.py hold URL --count N --ready FILE


serve: every port answers GET / with "<name>\\n" and GET /health with "OK\\n",
except that, per port P:

* while D/<name>.<P>.hang exists, /health is accepted and never answered:
  the port stays open and the TCP handshake succeeds, only the application
  hangs (the hung-JBoss case a layer-4 check cannot see);
* while D/<name>.<P>.down exists, /health answers 503;
* with --host, /health answers 421 unless the Host header is that name, so a
  check that passes proves keepalived sent its virtualhost.

GET /hold is answered ("<name>\n") only once D/release exists: a request in
flight, for as long as a test wants one.

get: N requests (new connection each) to URL; prints one JSON list of the
bodies (or "ERR <reason>" for a failed request) and exits 0.

hold: N requests at once, each on its own connection (through IPVS: each is
an ActiveConn on the real server that got it); FILE is written once all are
sent, then the answers are printed as one JSON list when they come.

Standard library only (the guest's /usr/bin/python3 runs it).
"""

import argparse
import json
import os
import ssl
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        srv = self.server
        path = self.path.split("?")[0]
        if path == "/hold":
            while not os.path.exists(os.path.join(srv.state_dir, "release")):
                time.sleep(0.05)
        if path != "/health":
            self.reply(200, srv.name + "\n")
            return
        base = os.path.join(srv.state_dir, "%s.%d" % (srv.name, srv.server_port))
        if os.path.exists(base + ".hang"):
            # Hold the request until the hang is lifted or the checker gives
            # up (its timeout closes the connection); never answer it.
            while os.path.exists(base + ".hang"):
                time.sleep(0.05)
            return
        if os.path.exists(base + ".down"):
            self.reply(503, "DOWN\n")
        elif srv.host and (self.headers.get("Host") or "").split(":")[0] != srv.host:
            self.reply(421, "wrong Host header %r\n" % self.headers.get("Host"))
        else:
            self.reply(200, "OK\n")

    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        pass  # checkers and TLS probes close early; no tracebacks


def serve(args):
    servers = []
    ports = [(p, False) for p in args.http] + [(p, True) for p in args.https]
    for port, tls in ports:
        srv = Server((args.bind, port), Handler)
        srv.name, srv.state_dir, srv.host = args.name, args.state_dir, args.host
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.cert, args.key)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        servers.append(srv)
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    if args.ready:
        with open(args.ready, "w") as handle:
            handle.write("ready\n")
    while True:
        time.sleep(3600)


def get(args):
    ctx = ssl._create_unverified_context() if args.insecure else None
    out = []
    for unused in range(args.count):
        req = urllib.request.Request(args.url, headers={"Host": args.host} if args.host else {})
        try:
            with urllib.request.urlopen(req, timeout=args.timeout, context=ctx) as resp:
                out.append(resp.read().decode().strip())
        except Exception as exc:  # noqa: BLE001 - every failure is a result here
            out.append("ERR %s" % exc)
    print(json.dumps(out))
    return 0


def hold(args):
    import http.client
    from urllib.parse import urlsplit
    url = urlsplit(args.url)
    conns = []
    for unused in range(args.count):
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=args.timeout)
        conn.request("GET", url.path or "/")
        conns.append(conn)
    with open(args.ready, "w") as handle:
        handle.write("%d\n" % len(conns))
    out = []
    for conn in conns:
        try:
            out.append(conn.getresponse().read().decode().strip())
        except Exception as exc:  # noqa: BLE001 - every failure is a result here
            out.append("ERR %s" % exc)
    print(json.dumps(out))
    return 0


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--bind", required=True)
    s.add_argument("--http", type=int, action="append", default=[])
    s.add_argument("--https", type=int, action="append", default=[])
    s.add_argument("--cert")
    s.add_argument("--key")
    s.add_argument("--host")
    s.add_argument("--state-dir", required=True)
    s.add_argument("--ready")
    g = sub.add_parser("get")
    g.add_argument("url")
    g.add_argument("--count", type=int, default=1)
    g.add_argument("--host")
    g.add_argument("--timeout", type=float, default=3.0)
    g.add_argument("--insecure", action="store_true")
    h = sub.add_parser("hold")
    h.add_argument("url")
    h.add_argument("--count", type=int, default=1)
    h.add_argument("--ready", required=True)
    h.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    return {"serve": serve, "get": get, "hold": hold}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
