#!/usr/bin/env python3
"""What does a rolling deploy cost on top of the deploy itself?

Rolls app instances from v1 to v2 behind a real HAProxy, under load
(lab/rolling_lab.py, lab/loadgen.py), each approach on a fresh lab:

* ours:     playbooks/rolling_deploy.yml (gentle.lb.rolling_deploy: one drain
            call per balancer for the batch, wait for the sessions, deploy,
            HTTP health gate, one restore call, wait until HAProxy reports UP),
            with this repository's .venv;
* classic:  lab/demo/classic.yml, the ansible-examples rolling_update pattern:
            community.general.haproxy state=disabled per host, deploy,
            wait_for the port, state=enabled -- with the peers'
            ansible-playbook (.venv-peers, PyPI's ansible package);
* baseline: with --baseline DIR, the role of an earlier checkout of this
            repository (DIR, e.g. a `git worktree add` of commit 6a14c2e),
            through its own playbooks/rolling_deploy.yml.

All use the same deploy tasks (lab/demo/deploy.yml: stop, install for
--install-seconds, start, wait for /health).  For each it prints the wall time
of ansible-playbook, the deploy time on the critical path (per batch, the
longest deploy command's own duration, its "delta"), their difference -- the
overhead the rollout adds --, the requests the load generator saw fail, the
fewest instances in rotation (HAProxy's view sampled every 50 ms), and the
per-phase times summed over the nodes (drain, wait, deploy, health, restore:
the role's own timings; for the classic playbook its tasks' durations).

Scenarios:

* graceful / impatient: 4 instances, serial 1.  "graceful": 10% of the
  requests take 300 ms, the app finishes requests in flight when stopped;
  "impatient": 10% take 2 s and the service manager kills the app 0.5 s after
  SIGTERM (a short systemd TimeoutStopSec): taking a node out without waiting
  for its sessions cuts the requests still running on it.
* scale: 32 instances behind one HAProxy, serial 8, min_active 24 (75%: room
  for exactly one batch), graceful load.
* concurrent: the same 32, two ansible-playbook processes of ours at once,
  each rolling half of the fleet (serial 8, min_active 20): the floor holds
  across both.

Measured on this repository's 2-core lab machine (shared), bench/rolling.py
--scenario scale --baseline (commit 6a14c2e's role, once): the role at 6a14c2e
added 245 s on top of the deploys (32 nodes, serial 8); the classic playbook
and the current role are printed in the same run.  Numbers, not assertions.

    python3 bench/rolling.py [--runs 1] [--install-seconds 1.0] [--haproxy 2.6]
                             [--scenario graceful|impatient|scale|concurrent|all]
                             [--baseline DIR]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from lab.rolling_lab import RollingLab  # noqa: E402

OURS = os.path.join(REPO, ".venv", "bin")
PEERS = os.environ.get("PEERS_VENV", os.path.join(REPO, ".venv-peers"))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
PHASES = ("drain", "wait", "deploy", "health", "restore")
# The classic playbook's tasks, by phase (it has no wait for sessions).
CLASSIC_PHASES = {"Disable the server in haproxy": "drain",
                  "Lab | stop the app, install the release, start the new version": "deploy",
                  "Wait for the webserver to come up": "health",
                  "Enable the server in haproxy": "restore"}

# A callback that writes, per host and task, how long the task took and the
# command's own "delta": loaded into every ansible-playbook of the bench.
CALLBACK = '''
import json, os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timing"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self.started = {}
        self.rows = []

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), task._uuid)] = time.time()

    def _done(self, result):
        key = (result._host.get_name(), result._task._uuid)
        start = self.started.pop(key, None)
        if start is None:
            return
        self.rows.append(dict(host=key[0], task=result._task.get_name(), seconds=time.time() - start,
                              delta=result._result.get("delta")))

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = _done

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["BENCH_TIMING_OUT"], "w") as handle:
            json.dump(self.rows, handle)
'''

SCENARIOS = {
    "graceful": dict(instances=4, serial=1, slow_ms=300, stop_timeout=10.0, min_active=1),
    "impatient": dict(instances=4, serial=1, slow_ms=2000, stop_timeout=0.5, min_active=1),
    "scale": dict(instances=32, serial=8, slow_ms=300, stop_timeout=10.0, min_active=24),
    "concurrent": dict(instances=32, serial=8, slow_ms=300, stop_timeout=10.0, min_active=20, processes=2),
}


def seconds(delta):
    """'0:00:04.123456' -> 4.123456"""
    h, m, s = delta.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


class Approach(object):
    def __init__(self, name, ansible_bin, playbook, collections):
        self.name = name
        self.ansible_bin = ansible_bin
        self.playbook = playbook
        self.collections = collections

    def env(self, callback_dir, timing_out):
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
                   ANSIBLE_RETRY_FILES_ENABLED="false", ANSIBLE_DEPRECATION_WARNINGS="false",
                   ANSIBLE_SHOW_CUSTOM_STATS="1", ANSIBLE_FORKS="8", ANSIBLE_CALLBACK_PLUGINS=callback_dir,
                   BENCH_TIMING_OUT=timing_out,
                   PATH=self.ansible_bin + os.pathsep + os.environ.get("PATH", ""))
        if self.collections:
            env.update(ANSIBLE_COLLECTIONS_PATH=self.collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")
        else:
            env.pop("ANSIBLE_COLLECTIONS_PATH", None)     # the peers' bundled collections
        return env


def approaches(args):
    found = [Approach("ours", OURS, os.path.join(REPO, "playbooks", "rolling_deploy.yml"), COLLECTIONS),
             Approach("classic", os.path.join(PEERS, "bin"), os.path.join(REPO, "lab", "demo", "classic.yml"), None)]
    if args.baseline:
        root = tempfile.mkdtemp(prefix="bench-baseline-")
        os.makedirs(os.path.join(root, "ansible_collections", "gentle"))
        os.symlink(os.path.abspath(args.baseline), os.path.join(root, "ansible_collections", "gentle", "lb"))
        found.append(Approach("baseline", OURS, os.path.join(args.baseline, "playbooks", "rolling_deploy.yml"), root))
    return found


def batches(hosts, serial):
    return [hosts[i:i + serial] for i in range(0, len(hosts), serial)]


def one_rollout(approach, args, scenario):
    knobs = SCENARIOS[scenario]
    work = tempfile.mkdtemp(prefix="bench-rolling-")
    with open(os.path.join(work, "bench_timing.py"), "w") as handle:
        handle.write(CALLBACK)
    processes = knobs.get("processes", 1)
    with RollingLab(instances=knobs["instances"], haproxy=args.haproxy, stop_timeout=knobs["stop_timeout"]) as lab:
        hosts = [n.name for n in lab.nodes]
        halves = batches(hosts, len(hosts) // processes)
        lab.start_load(slow_ms=knobs["slow_ms"])
        started = time.monotonic()
        procs = []
        for index, half in enumerate(halves):
            timing = os.path.join(work, "timing-%d.json" % index)
            extra = {"lab_install_seconds": args.install_seconds, "rolling_deploy_serial": knobs["serial"],
                     "rolling_deploy_min_active": knobs["min_active"], "lab_serial": knobs["serial"]}
            argv = [os.path.join(approach.ansible_bin, "ansible-playbook"), "-i", lab.inventory,
                    approach.playbook, "-e", json.dumps(extra)]
            if processes > 1:
                argv += ["--limit", ",".join(half)]
            log = open(os.path.join(work, "playbook-%d.log" % index), "w+")
            procs.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                                           env=approach.env(work, timing)), log, timing, half))
        outputs, rcs, rows = [], [], []
        for proc, log, timing, half in procs:
            rcs.append(proc.wait())
            log.seek(0)
            outputs.append(log.read())
            log.close()
            with open(timing) as handle:
                rows.extend(json.load(handle))
        wall = time.monotonic() - started
        load = lab.stop_load()
        versions = lab.versions()
    shutil.rmtree(work, ignore_errors=True)

    # The deploy command's own duration, per host (the only command task of every playbook).
    # Inside the role the task's name carries the role's prefix ("gentle.lb.rolling_deploy : Lab | ...").
    deltas = dict((r["host"], seconds(r["delta"])) for r in rows
                  if r.get("delta") and r["task"].split(" : ")[-1].startswith("Lab |"))
    critical = sum(max(deltas.get(h, 0.0) for h in batch)
                   for half in halves for batch in batches(half, knobs["serial"]))
    phases = dict((p, 0.0) for p in PHASES)
    if approach.name == "classic":
        for row in rows:
            phase = CLASSIC_PHASES.get(row["task"])
            if phase:
                phases[phase] += row["seconds"]
    else:
        for output in outputs:
            for timing in stats_of(output).values():
                for phase in PHASES:
                    phases[phase] += timing.get(phase) or 0.0
    rotation = [s["in_rotation"] for s in load["rotation"]]
    splits = sum(len(re.findall(r"the capacity floor does not let \d+ hosts? leave at once", o)) for o in outputs)
    failed_rcs = [rc for rc in rcs if rc != 0]
    if failed_rcs or len(deltas) != len(hosts):
        print("%s %s: ansible-playbook rc=%s, %d/%d deploys:\n%s" % (
            scenario, approach.name, rcs, len(deltas), len(hosts), "\n".join(o[-3000:] for o in outputs)),
            file=sys.stderr)
    return dict(rc=max(rcs), wall=wall, deploy=critical, overhead=wall - critical, failed=load["failed"],
                sent=load["sent"], errors=load["errors"], phases=phases, splits=splits,
                min_rotation=min(rotation) if rotation else None,
                v2=sum(1 for v in versions.values() if v == "v2"), hosts=len(hosts))


def stats_of(output):
    """The role's rolling_deploy_timings from the set_stats artifacts."""
    match = re.search(r"^\tRUN: (.*)$", output, re.M)
    return json.loads(match.group(1)).get("rolling_deploy_play_timings", {}) if match else {}


def report(scenario, args, found):
    knobs = SCENARIOS[scenario]
    results = dict((a.name, []) for a in found)
    for run in range(args.runs):
        for approach in found:
            if scenario == "concurrent" and approach.name != "ours":
                continue
            r = one_rollout(approach, args, scenario)
            results[approach.name].append(r)
            print("%s run %d %-8s rc=%d wall %6.1f s  deploy %6.1f s  overhead %6.1f s  failed %d/%d  "
                  "in rotation >= %s  on v2: %d/%d" % (
                      scenario, run + 1, approach.name, r["rc"], r["wall"], r["deploy"], r["overhead"], r["failed"],
                      r["sent"], r["min_rotation"], r["v2"], r["hosts"]), flush=True)
    print()
    print("%s: %d instances, HAProxy %s, serial %d%s, min_active %d, %.1f s install per node, slow requests %d ms, "
          "stop timeout %g s; medians of %d run(s)" % (
              scenario, knobs["instances"], args.haproxy, knobs["serial"],
              " in %d playbooks at once" % knobs["processes"] if knobs.get("processes") else "",
              knobs["min_active"], args.install_seconds, knobs["slow_ms"], knobs["stop_timeout"], args.runs))
    print("%-38s %7s %8s %9s %8s %6s %6s   %s" % ("", "wall s", "deploy s", "overhead", "per node", "failed",
                                                  "min in", "phases summed over nodes, s"))
    print("%-38s %7s %8s %9s %8s %6s %6s   %s" % ("", "", "(crit.)", "s", "s", "", "rot.",
                                                  "  ".join("%7s" % p for p in PHASES)))
    labels = dict(ours="gentle.lb.rolling_deploy", classic="classic (c.g.haproxy disable/enable)",
                  baseline="the role at %s" % (args.baseline_label or "--baseline"))
    med = {}
    for approach in found:
        rs = results[approach.name]
        if not rs:
            continue
        m = dict((k, statistics.median(r[k] for r in rs)) for k in ("wall", "deploy", "overhead", "failed"))
        m["min_rotation"] = min(r["min_rotation"] for r in rs)
        m["phases"] = dict((p, statistics.median(r["phases"][p] for r in rs)) for p in PHASES)
        med[approach.name] = m
        print("%-38s %7.1f %8.1f %9.1f %8.2f %6d %6s   %s" % (
            labels[approach.name], m["wall"], m["deploy"], m["overhead"], m["overhead"] / knobs["instances"],
            m["failed"], m["min_rotation"], "  ".join("%7.1f" % m["phases"][p] for p in PHASES)))
    if "classic" in med and "ours" in med:
        print("overhead ratio (ours / classic): %.2f" % (med["ours"]["overhead"] / med["classic"]["overhead"]))
    if "baseline" in med and "ours" in med:
        print("overhead ratio (baseline / ours): %.2f" % (med["baseline"]["overhead"] / med["ours"]["overhead"]))
    if "ours" in med:
        splits = sum(r["splits"] for r in results["ours"])
        print("ours: in-rotation floor %d, fewest seen %s; %d batch split(s) by the capacity guard" % (
            knobs["min_active"], med["ours"]["min_rotation"], splits))
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description="rolling deploy overhead: gentle.lb vs the classic pattern")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--install-seconds", type=float, default=1.0)
    parser.add_argument("--haproxy", default="2.6", choices=("2.6", "3.0"))
    parser.add_argument("--scenario", default="all", choices=("graceful", "impatient", "scale", "concurrent", "all"))
    parser.add_argument("--baseline", help="another checkout of this repository whose role to measure too")
    parser.add_argument("--baseline-label", help="how to name it in the table (default: its commit)")
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(PEERS, "bin", "ansible-playbook")):
        sys.exit("%s is missing: run bash lab/peers/setup.sh first" % PEERS)
    if args.baseline and not args.baseline_label:
        args.baseline_label = subprocess.run(["git", "-C", args.baseline, "rev-parse", "--short", "HEAD"],
                                             capture_output=True, text=True).stdout.strip() or args.baseline
    found = approaches(args)
    for scenario in (("graceful", "impatient", "scale", "concurrent") if args.scenario == "all" else (args.scenario,)):
        report(scenario, args, found if scenario == "scale" else [a for a in found if a.name != "baseline"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
