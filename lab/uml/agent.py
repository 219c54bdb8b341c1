#!/usr/bin/python3
"""The guest half of lab/uml/run --agent: run what the host asks, in the guest.

    agent.py MAILBOX

Started by guest-init.sh before the command (never by hand).  MAILBOX is a
directory on the host file system, so both sides see it: the host (the
Ansible connection plugin lab/uml/connection/uml.py, or anything else) writes
a request, the agent carries it out in the guest and writes the answer.

Protocol, all files in MAILBOX, every one written under a temporary name and
renamed, so neither side ever reads half a file:

    ID.req    {"op": "exec", "cmd": SHELL COMMAND, "stdin": true|false}
              {"op": "put", "dst": GUEST PATH}       (data in ID.data)
              {"op": "fetch", "src": GUEST PATH}     (data to ID.data)
    ID.in     the command's stdin (exec with "stdin": true), before ID.req
    ID.out, ID.err, ID.data   the answer's stdout / stderr / file
    ID.rc     the exit status, written last: the answer is complete
    ready     written once the agent listens (guest-init.sh waits for it)
    heartbeat rewritten every HEARTBEAT seconds: a host can tell a stalled
              guest from a long command

Requests run at once, each in its own thread (Ansible's forks talk to the
same guest).  Commands run with /bin/sh -c in the agent's environment (the
caller's, as for the main command), in a new session, with stdout and stderr
going straight to the answer files.  Standard library only: it runs on the
guest's /usr/bin/python3, before any virtualenv exists.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time

# How often the mailbox is listed.  Each look costs a few host system calls
# (hostfs); 20 ms keeps a request's latency far below a process start here.
POLL = 0.02
HEARTBEAT = 2.0


def publish(mailbox, name, data):
    """Write MAILBOX/NAME atomically (write, then rename)."""
    tmp = os.path.join(mailbox, "." + name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.rename(tmp, os.path.join(mailbox, name))


def serve_one(mailbox, rid, request):
    path = os.path.join(mailbox, rid)
    rc = 0
    try:
        op = request.get("op")
        if op == "exec":
            stdin = open(path + ".in", "rb") if request.get("stdin") else subprocess.DEVNULL
            try:
                with open(path + ".out", "wb") as out, open(path + ".err", "wb") as err:
                    rc = subprocess.call(["/bin/sh", "-c", request["cmd"]], stdin=stdin, stdout=out,
                                         stderr=err, start_new_session=True)
            finally:
                if stdin is not subprocess.DEVNULL:
                    stdin.close()
        elif op == "put":
            shutil.copyfile(path + ".data", request["dst"])
        elif op == "fetch":
            shutil.copyfile(request["src"], path + ".data")
        else:
            raise ValueError("unknown op %r" % op)
    except (OSError, ValueError, KeyError) as exc:
        # The host reports it: say what failed, in the guest's words.
        with open(path + ".err", "ab") as err:
            err.write(("agent: %s failed in the guest: %s\n" % (request.get("op"), exc)).encode())
        rc = 1 if rc == 0 else rc
    publish(mailbox, rid + ".rc", b"%d\n" % rc)


def main(argv):
    if len(argv) != 1:
        sys.stderr.write("usage: agent.py MAILBOX\n")
        return 2
    mailbox = argv[0]
    publish(mailbox, "ready", b"%d\n" % os.getpid())
    next_beat = 0.0
    while True:
        now = time.monotonic()
        if now >= next_beat:
            publish(mailbox, "heartbeat", b"%.1f\n" % now)
            next_beat = now + HEARTBEAT
        for name in os.listdir(mailbox):
            if not name.endswith(".req"):
                continue
            rid = name[:-4]
            taken = os.path.join(mailbox, rid + ".taken")
            try:
                os.rename(os.path.join(mailbox, name), taken)
                with open(taken) as handle:
                    request = json.load(handle)
            except (OSError, ValueError) as exc:
                publish(mailbox, rid + ".err", ("agent: unreadable request: %s\n" % exc).encode())
                publish(mailbox, rid + ".rc", b"1\n")
                continue
            threading.Thread(target=serve_one, args=(mailbox, rid, request), daemon=True).start()
        time.sleep(POLL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
