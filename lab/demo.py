#!/usr/bin/env python3
"""`make demo`: a rolling deploy of four app instances, under load, with no
failed request.

1. starts the lab (lab/rolling_lab.py): a real HAProxy on 127.0.0.1 in front
   of four app instances running v1, each its own process;
2. starts the load generator (lab/loadgen.py): a steady mix of keep-alive,
   new-connection and slow requests through HAProxy, counting every failure;
3. runs playbooks/rolling_deploy.yml (serial 1): each instance is drained in
   HAProxy (one gentle.lb.member call per batch), waited on until its last
   request finished, stopped, "installed" for a few seconds, started as v2,
   checked through its own health URL, put back and waited on until HAProxy
   reports it UP;
4. prints the requests sent and failed, each node's timings, the versions now
   served, and shuts everything down.

    .venv/bin/python lab/demo.py [--haproxy 2.6|3.0] [--install-seconds 3.5]
                                 [--serial 1] [--compare] [--quiet]

--compare also restarts every instance again (v2 -> v3) the naive way, without
draining, under the same load, and prints how many requests that failed.
Exit status 0 when the rollout succeeded, every instance serves v2 and no
request failed.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from lab.rolling_lab import RollingLab  # noqa: E402

BIN = os.path.dirname(sys.executable)
PLAYBOOK = os.path.join(REPO, "playbooks", "rolling_deploy.yml")
NAIVE = os.path.join(HERE, "demo", "naive.yml")
COLLECTIONS = os.path.join(REPO, ".cache", "collections")


def say(text=""):
    print(text, flush=True)


def ansible_env():
    link = os.path.join(COLLECTIONS, "ansible_collections", "gentle", "lb")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="false", ANSIBLE_SHOW_CUSTOM_STATS="1",
               ANSIBLE_LOCALHOST_WARNING="false", PATH=BIN + os.pathsep + env.get("PATH", ""))
    return env


def run_playbook(inventory, playbook, extra, quiet, label):
    """Run ansible-playbook, echoing its output (indented) unless quiet."""
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, playbook, "-e", json.dumps(extra)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ansible_env(), cwd=REPO)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if not quiet and line.strip():
            print("    " + line.rstrip(), flush=True)
    proc.wait()
    seconds = time.monotonic() - started
    if quiet:
        say("  %s: ansible-playbook exited %d after %.1f s" % (label, proc.returncode, seconds))
    return proc.returncode, "".join(lines), seconds


def timings_from(output):
    match = re.search(r"^\tRUN: (.*)$", output, re.M)
    if not match:
        return {}
    return json.loads(match.group(1)).get("rolling_deploy_play_timings", {})


def load_line(summary):
    errors = ", ".join("%s %d" % kv for kv in sorted(summary["errors"].items())) or "none"
    return ("%d requests sent, %d failed (%s); %.0f requests/s; served by version: %s"
            % (summary["sent"], summary["failed"], errors, summary["rate"],
               ", ".join("%s %d" % kv for kv in sorted(summary["versions"].items()))))


def main(argv=None):
    parser = argparse.ArgumentParser(description="the gentle.lb rolling-deploy demo")
    parser.add_argument("--haproxy", default="2.6", choices=("2.6", "3.0"))
    parser.add_argument("--install-seconds", type=float, default=3.5,
                        help="how long each instance is down between stop and start (default 3.5: "
                             "longer than HAProxy's retries, like a real release)")
    parser.add_argument("--serial", default="1", help="batch size (default 1)")
    parser.add_argument("--compare", action="store_true",
                        help="then restart every instance again without draining, for contrast")
    parser.add_argument("--quiet", action="store_true", help="do not echo ansible-playbook's output")
    args = parser.parse_args(argv)
    started = time.monotonic()

    say("gentle.lb demo: roll four app instances from v1 to v2 behind HAProxy, under load")
    say()
    with RollingLab(instances=4, haproxy=args.haproxy) as lab:
        say("lab up in %.1f s: HAProxy %s, frontend %s, admin socket %s"
            % (time.monotonic() - started, lab.haproxy.version, lab.haproxy.frontend_url, lab.haproxy.admin_socket))
        say("instances: " + ", ".join("%s %s (%s)" % (n.name, n.url, v)
                                       for n, v in zip(lab.nodes, lab.versions().values())))
        lab.start_load()
        say("load generator running: keep-alive and new-connection requests, 10% slow (300 ms)")
        say()
        say("ansible-playbook -i %s playbooks/rolling_deploy.yml  (serial %s, %.1f s install per node)"
            % (lab.inventory, args.serial, args.install_seconds))
        rc, output, seconds = run_playbook(
            lab.inventory, PLAYBOOK,
            {"lab_install_seconds": args.install_seconds, "rolling_deploy_serial": args.serial},
            args.quiet, "rollout")
        load = lab.stop_load()
        versions = lab.versions()
        timings = timings_from(output)

        naive = None
        if args.compare and rc == 0:
            say()
            say("for contrast: the naive restart (v2 -> v3, no drain), same load and deploy tasks")
            lab.start_load()
            run_playbook(lab.inventory, NAIVE, {"lab_install_seconds": args.install_seconds, "lab_version": "v3"},
                         True, "naive restart")
            naive = lab.stop_load()

    say()
    say("=" * 78)
    say("rollout: ansible-playbook exited %d after %.1f s" % (rc, seconds))
    say("load:    " + load_line(load))
    if timings:
        say()
        say("  %-6s %-8s %9s %9s %9s %9s %9s %9s" % ("node", "result", "drain s", "wait s", "deploy s", "health s",
                                                     "restore s", "total s"))
        for host in sorted(timings):
            t = timings[host]
            say("  %-6s %-8s %9s %9s %9s %9s %9s %9s" % (
                host, t["result"], *("-" if t.get(k) is None else "%.2f" % t[k]
                                     for k in ("drain", "wait", "deploy", "health", "restore", "total"))))
    say()
    say("versions now served: " + ", ".join("%s %s" % kv for kv in versions.items()))
    if naive is not None:
        say("naive restart, for contrast: " + load_line(naive))
    ok = rc == 0 and load["failed"] == 0 and set(versions.values()) == {"v2"}
    say("demo %s in %.0f s" % ("PASSED: every instance on v2, not one failed request" if ok else "FAILED",
                               time.monotonic() - started))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
