#!/usr/bin/env python3
"""A tiny real server for the IPVS netns lab (standard library only).

Every TCP port answers in two ways, chosen by the client's first line:

* an HTTP request line ("GET / HTTP/1.0") gets "HTTP/1.0 200 OK" with the
  body "<name>\\n", then the connection is closed (curl, health checks);
* anything else is a line protocol: each line received is answered with
  "<name>\\n", and the connection stays open until the client closes it.
  That is what lets a test hold connections and watch IPVS's ActiveConn.

Every UDP port answers each datagram with "<name>\\n".

    rs_server.py --name rs1 --port 80 [--port 8080] [--ready FILE]
"""

import argparse
import socketserver
import sys
import threading

HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ")


class TCPHandler(socketserver.StreamRequestHandler):
    def handle(self):
        name = self.server.lab_name.encode() + b"\n"
        first = self.rfile.readline()
        if first.startswith(HTTP_METHODS):
            # Read the headers so the client sees a clean close, not a reset.
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            body = b"" if first.startswith(b"HEAD ") else name
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(name) + body)
            return
        line = first
        while line:
            self.wfile.write(name)
            line = self.rfile.readline()


class UDPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        _data, sock = self.request
        sock.sendto(self.server.lab_name.encode() + b"\n", self.client_address)


class TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # the default 5 refuses bursts of held connections


class UDPServer(socketserver.UDPServer):
    allow_reuse_address = True


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="answer sent to clients, e.g. rs1")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, action="append", required=True)
    p.add_argument("--no-udp", action="store_true", help="serve TCP only")
    p.add_argument("--ready", help="file created once every port listens")
    args = p.parse_args(argv)

    servers = []
    for port in args.port:
        kinds = [(TCPServer, TCPHandler)] + ([] if args.no_udp else [(UDPServer, UDPHandler)])
        for cls, handler in kinds:
            srv = cls((args.bind, port), handler)
            srv.lab_name = args.name
            servers.append(srv)
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    if args.ready:
        # Bound and listening from here on: tell whoever waits for us.
        with open(args.ready, "w") as f:
            f.write("%s\n" % " ".join(str(p) for p in args.port))
    print("%s listening on %s ports %s" % (args.name, args.bind, args.port), flush=True)
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
