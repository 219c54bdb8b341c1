#!/usr/bin/env python3
"""What does a rolling deploy cost on top of the deploy itself?

Rolls four app instances from v1 to v2 behind a real HAProxy, under load
(lab/rolling_lab.py, lab/loadgen.py), twice per run, each on a fresh lab:

* ours:    playbooks/rolling_deploy.yml (gentle.lb.rolling_deploy: drain and
           wait for the sessions, deploy, HTTP health gate, restore and wait
           until HAProxy reports UP), with this repository's .venv;
* classic: lab/demo/classic.yml, the ansible-examples rolling_update pattern:
           community.general.haproxy state=disabled, deploy, wait_for the
           port, state=enabled -- with the peers' ansible-playbook
           (.venv-peers, PyPI's ansible package; lab/peers/setup.sh).

Both use the same deploy tasks (lab/demo/deploy.yml: stop, install for
--install-seconds, start, wait for /health).  For each it prints the wall time
of ansible-playbook, the sum of the deploy steps' own durations (the command
task's delta, measured the same way for both), their difference -- the
overhead the rollout adds -- and the requests the load generator saw fail.

Two scenarios: "graceful" (10% of the requests take 300 ms; the app finishes
requests in flight when stopped, within a 10 s stop timeout) and "impatient"
(10% take 2 s, and the service manager kills the app 0.5 s after SIGTERM, as
a short systemd TimeoutStopSec does): there, taking a node out without waiting
for its sessions cuts the requests still running on it.
Numbers, not assertions.

    python3 bench/rolling.py [--runs 1] [--install-seconds 1.0] [--haproxy 2.6]
                             [--scenario graceful|impatient|both]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from lab.rolling_lab import RollingLab  # noqa: E402

OURS = os.path.join(REPO, ".venv", "bin")
PEERS = os.environ.get("PEERS_VENV", os.path.join(REPO, ".venv-peers"))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")


def env_for(approach):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_RETRY_FILES_ENABLED="false",
               ANSIBLE_DEPRECATION_WARNINGS="false")
    if approach == "ours":
        env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
                   PATH=OURS + os.pathsep + env.get("PATH", ""))
    else:
        env.pop("ANSIBLE_COLLECTIONS_PATH", None)     # the peers' bundled collections
        env["PATH"] = os.path.join(PEERS, "bin") + os.pathsep + env.get("PATH", "")
    return env


def seconds(delta):
    """'0:00:04.123456' -> 4.123456"""
    h, m, s = delta.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def deploy_seconds(output):
    """Sum of the deploy command's own durations (its "delta"), over every
    host, from ansible-playbook -v output (the only command tasks are the
    deploy's, in both playbooks)."""
    deltas = [seconds(d) for d in re.findall(r'"delta": "(\d+:\d+:[\d.]+)"', output)]
    return sum(deltas), len(deltas)


SCENARIOS = {
    "graceful": {"slow_ms": 300, "stop_timeout": 10.0},
    "impatient": {"slow_ms": 2000, "stop_timeout": 0.5},
}


def one_rollout(approach, args, scenario):
    if approach == "ours":
        ansible_playbook = os.path.join(OURS, "ansible-playbook")
        playbook = os.path.join(REPO, "playbooks", "rolling_deploy.yml")
    else:
        ansible_playbook = os.path.join(PEERS, "bin", "ansible-playbook")
        playbook = os.path.join(REPO, "lab", "demo", "classic.yml")
    knobs = SCENARIOS[scenario]
    with RollingLab(instances=4, haproxy=args.haproxy, stop_timeout=knobs["stop_timeout"]) as lab:
        lab.start_load(slow_ms=knobs["slow_ms"])
        started = time.monotonic()
        proc = subprocess.run([ansible_playbook, "-v", "-i", lab.inventory, playbook,
                               "-e", json.dumps({"lab_install_seconds": args.install_seconds})],
                              capture_output=True, text=True, env=env_for(approach), cwd=REPO)
        wall = time.monotonic() - started
        load = lab.stop_load()
        versions = lab.versions()
    deploy, hosts = deploy_seconds(proc.stdout)
    if proc.returncode != 0 or hosts != 4:
        print("%s: ansible-playbook rc=%d, %d deploy results:\n%s" % (
            approach, proc.returncode, hosts, (proc.stdout + proc.stderr)[-3000:]), file=sys.stderr)
    return {"rc": proc.returncode, "wall": wall, "deploy": deploy, "hosts": hosts,
            "overhead": wall - deploy, "failed": load["failed"], "sent": load["sent"],
            "errors": load["errors"], "v2": sum(1 for v in versions.values() if v == "v2")}


def report(scenario, args):
    knobs = SCENARIOS[scenario]
    results = {"ours": [], "classic": []}
    for run in range(args.runs):
        for approach in ("ours", "classic"):
            r = one_rollout(approach, args, scenario)
            results[approach].append(r)
            print("%s run %d %-7s rc=%d wall %6.1f s  deploy %6.1f s  overhead %6.1f s  failed %d/%d  on v2: %d/4"
                  % (scenario, run + 1, approach, r["rc"], r["wall"], r["deploy"], r["overhead"], r["failed"],
                     r["sent"], r["v2"]), flush=True)
    print()
    print("%s: 4 instances, HAProxy %s, %.1f s install per node, slow requests %d ms, stop timeout %g s;"
          " medians of %d run(s)" % (scenario, args.haproxy, args.install_seconds, knobs["slow_ms"],
                                     knobs["stop_timeout"], args.runs))
    print("%-40s %9s %9s %11s %11s %8s" % ("", "wall s", "deploy s", "overhead s", "per node s", "failed"))
    med = {}
    for approach, label in (("ours", "gentle.lb.rolling_deploy"),
                            ("classic", "classic (c.g.haproxy disable/enable)")):
        rs = results[approach]
        m = {k: statistics.median(r[k] for r in rs) for k in ("wall", "deploy", "overhead", "failed")}
        med[approach] = m
        print("%-40s %9.1f %9.1f %11.1f %11.2f %8d" % (label, m["wall"], m["deploy"], m["overhead"],
                                                      m["overhead"] / 4, m["failed"]))
    print("overhead ratio (ours / classic): %.2f" % (med["ours"]["overhead"] / med["classic"]["overhead"]))
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description="rolling deploy overhead: gentle.lb vs the classic pattern")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--install-seconds", type=float, default=1.0)
    parser.add_argument("--haproxy", default="2.6", choices=("2.6", "3.0"))
    parser.add_argument("--scenario", default="both", choices=("graceful", "impatient", "both"))
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(PEERS, "bin", "ansible-playbook")):
        sys.exit("%s is missing: run bash lab/peers/setup.sh first" % PEERS)

    for scenario in (("graceful", "impatient") if args.scenario == "both" else (args.scenario,)):
        report(scenario, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
