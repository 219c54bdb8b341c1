#!/usr/bin/env python3
"""Open N TCP connections to a virtual service and hold them open.

Used to make IPVS count ActiveConn on real servers, so drain waiting can be
proven: the connections stay ESTABLISHED until --hold seconds pass or the
--until file appears, then all are closed cleanly (FIN) and the tool exits 0.

Each connection sends one line and reads the answer (lab/uml/rs_server.py
replies with its name), so when --ready is written every connection has gone
through IPVS and back, and IPVS has it in its table.  Prints one line per
connection: "<index> <local-port> <answer>".

Run it in the lab's client namespace:

    ip netns exec client python3 lab/uml/holdconn.py -n 2 --ready /run/held \\
        --until /run/release --hold 60 10.0.0.100 80
"""

import argparse
import os
import socket
import sys
import time


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("-n", "--count", type=int, default=1, help="connections (default 1)")
    p.add_argument("--hold", type=float, default=30.0,
                   help="seconds to hold before closing (default 30)")
    p.add_argument("--until", metavar="FILE", help="close as soon as FILE exists")
    p.add_argument("--ready", metavar="FILE",
                   help="create FILE once every connection is established and answered")
    p.add_argument("--connect-timeout", type=float, default=5.0)
    args = p.parse_args(argv)

    conns = []
    try:
        for i in range(args.count):
            s = socket.create_connection((args.host, args.port), timeout=args.connect_timeout)
            s.sendall(b"hello\n")
            answer = s.makefile("rb").readline().decode(errors="replace").strip()
            conns.append(s)
            print("%d %d %s" % (i, s.getsockname()[1], answer or "-"), flush=True)
    except OSError as e:
        print("holdconn: connection %d to %s:%d failed: %s" % (len(conns), args.host, args.port, e),
              file=sys.stderr)
        return 1

    if args.ready:
        with open(args.ready, "w") as f:
            f.write("%d\n" % len(conns))

    # Poll for the release file: a short interval keeps the release moment
    # sharp, which is what drain-timing tests measure.
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline:
        if args.until and os.path.exists(args.until):
            break
        time.sleep(0.05)

    for s in conns:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
