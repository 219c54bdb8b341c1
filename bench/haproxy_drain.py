#!/usr/bin/env python3
"""How soon does a drain return once the last session is gone?

Starts a real HAProxy (lab/haproxy_lab.py), holds a request open through it
to app/web3, starts a drain (the module file run directly by its own venv's
Python, as Ansible's module runner does, so Ansible's start-up and tear-down
-- the same for both -- do not blur the number), lets the request finish
after a random delay, and measures how long after that moment the module
returns.  Compared, in the same run and against the same HAProxy:

* ours:  ``gentle.lb.haproxy_member state=drained`` (default poll_interval 0.5,
         and poll_interval 0.1 for reference)
* peer:  ``community.general.haproxy state=drain wait=true drain=true`` from
         PyPI's ``ansible`` package in .venv-peers (lab/peers/setup.sh), at its
         default ``wait_interval`` (5 s) and at its smallest (1 s).
         (``drain: true`` is what makes it wait for the sessions: with
         ``state=drain wait=true`` alone it returns as soon as the status reads
         DRAIN, while the session is still open -- shown once, as "early".)

Also prints the wall time of one ad-hoc toggle (``ansible localhost -m ...``,
drain of an idle server) for both.  Numbers, not assertions: this is a benchmark, not a test.

    python3 bench/haproxy_drain.py [--version 2.6|3.0] [--runs 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.haproxy_lab import HAProxyLab, wait_until  # noqa: E402

OURS_VENV = REPO / ".venv"
PEERS_VENV = Path(os.environ.get("PEERS_VENV", REPO / ".venv-peers"))
COLLECTIONS = REPO / ".cache" / "collections"


def ensure_collection_link():
    link = COLLECTIONS / "ansible_collections" / "gentle" / "lb"
    if not link.is_symlink() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)


def env_for(venv: Path, collections: Path | None) -> dict:
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=str(venv / "bin" / "python"),
               ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_DEPRECATION_WARNINGS="false")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    env.pop("PYTHONPATH", None)
    if collections:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
        env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "false"
    return env


class Tool:
    """One module with its arguments, runnable two ways: the module file
    directly (what the drain timing measures: the module's own waiting,
    without Ansible's start-up and tear-down, which are the same for both
    tools) and as an ad-hoc ``ansible -m`` command (the toggle timing)."""

    def __init__(self, label, venv, module, args, collections=None):
        self.label = label
        self.venv = venv
        self.module = module
        self.args = args
        self.env = env_for(venv, collections)
        self.module_env = dict(self.env)
        if collections:
            self.module_env["PYTHONPATH"] = str(collections)
        self.adhoc = [str(venv / "bin" / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
                      "-m", module, "-a", json.dumps(args)]

    def module_cmd(self, args_file: str) -> list[str]:
        namespace, name, short = self.module.split(".")
        return [str(self.venv / "bin" / "python"), "-m",
                f"ansible_collections.{namespace}.{name}.plugins.modules.{short}", args_file]


def tools(lab: HAProxyLab) -> dict[str, Tool]:
    sock = lab.admin_socket
    peer = dict(socket=sock, backend="app", host="web3", state="drain", wait=True, drain=True)
    return {
        "ours": Tool("gentle.lb.haproxy_member state=drained (poll_interval 0.5, default)", OURS_VENV,
                     "gentle.lb.haproxy_member", dict(socket=sock, backend="app", server="web3", state="drained"),
                     COLLECTIONS),
        "ours01": Tool("gentle.lb.haproxy_member state=drained poll_interval=0.1", OURS_VENV,
                       "gentle.lb.haproxy_member", dict(socket=sock, backend="app", server="web3",
                                                        state="drained", poll_interval=0.1), COLLECTIONS),
        "peer": Tool("community.general.haproxy state=drain wait=true drain=true (wait_interval 5, default)",
                     PEERS_VENV, "community.general.haproxy", peer),
        "peer1": Tool("community.general.haproxy state=drain wait=true drain=true wait_interval=1 (its minimum)",
                      PEERS_VENV, "community.general.haproxy", dict(peer, wait_interval=1)),
        "early": Tool("community.general.haproxy state=drain wait=true (no drain: true)",
                      PEERS_VENV, "community.general.haproxy", dict(peer, drain=False)),
    }


def admin_state(lab: HAProxyLab, backend: str, server: str) -> int:
    for row in lab.servers_state(backend):
        if row["srv_name"] == server:
            return int(row["srv_admin_state"])
    raise RuntimeError(f"no {backend}/{server}")


def restore(lab: HAProxyLab):
    lab.send("set server app/web3 state ready")
    lab.wait_status("app", "web3", "UP", timeout=10)


def one_drain(lab: HAProxyLab, tool: Tool, hold_for: float) -> tuple[float, float]:
    """(seconds from the session's end to the command's return, total wall time).
    Negative: the command returned that long before the session ended."""
    restore(lab)
    held = lab.hold("web3", seconds=120)
    args_file = REPO / ".cache" / ("bench-args-%d.json" % os.getpid())
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": tool.args}))
    started = time.monotonic()
    proc = subprocess.Popen(tool.module_cmd(str(args_file)), env=tool.module_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        wait_until(lambda: admin_state(lab, "app", "web3") & 0x08 or proc.poll() is not None,
                   timeout=60, interval=0.01, what="the drain to be applied")
        deadline = time.monotonic() + hold_for
        exited_at = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                exited_at = time.monotonic()
                break
            time.sleep(0.005)
        released = time.monotonic()
        held.release()
        out, err = proc.communicate(timeout=300)
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
        held.close()
        args_file.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"{tool.label} failed (rc={proc.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
    if held.status != 200:
        raise RuntimeError(f"the held request ended with {held.status} / {held.error}")
    if exited_at is not None:
        return exited_at - deadline, exited_at - started
    return ended - released, ended - started


def one_toggle(lab: HAProxyLab, tool: Tool) -> float:
    restore(lab)
    started = time.monotonic()
    proc = subprocess.run(tool.adhoc, env=tool.env, capture_output=True, text=True, cwd=REPO, timeout=300)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{tool.label} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="2.6", choices=["2.6", "3.0"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--toggles", type=int, default=5, help="ad-hoc toggles per tool (median)")
    args = parser.parse_args(argv)
    if not (PEERS_VENV / "bin" / "ansible").exists():
        print(f"{PEERS_VENV} is missing: run lab/peers/setup.sh first", file=sys.stderr)
        return 2
    ensure_collection_link()
    rng = random.Random(args.seed)
    # The same hold times for every tool: 0.5-5.5 s spreads the moment the
    # session ends over a whole 5 s polling interval of the peer.
    holds = [rng.uniform(0.5, 5.5) for _ in range(args.runs)]

    with HAProxyLab(version=args.version) as lab:
        lab.wait_servers_up()
        print(f"HAProxy {lab.version}; {args.runs} runs per tool; hold times "
              + ", ".join(f"{h:.2f}" for h in holds) + " s")
        all_tools = tools(lab)
        lags: dict[str, list[float]] = {}
        for key in ("ours", "ours01", "peer", "peer1"):
            tool = all_tools[key]
            lags[key] = []
            for hold in holds:
                lag, _wall = one_drain(lab, tool, hold)
                lags[key].append(lag)
            print(f"  {tool.label}:\n    returned after the last session closed: "
                  + ", ".join(f"{x:.3f}" for x in lags[key]) + " s")
        early, _wall = one_drain(lab, all_tools["early"], 2.0)
        toggles = {}
        for key in ("ours", "peer"):
            toggles[key] = statistics.median(one_toggle(lab, all_tools[key]) for _ in range(args.toggles))
        restore(lab)

    ours = statistics.median(lags["ours"])
    print()
    print(f"median, from the last session closing to the module returning (HAProxy {args.version}):")
    print(f"  gentle.lb.haproxy_member            {ours:7.3f} s")
    print(f"  gentle.lb.haproxy_member (0.1 s)    {statistics.median(lags['ours01']):7.3f} s")
    for key, name in (("peer", "community.general.haproxy (5 s)"), ("peer1", "community.general.haproxy (1 s)")):
        peer = statistics.median(lags[key])
        print(f"  {name:<35}{peer:7.3f} s   ratio {peer / ours:6.1f}x")
    if early < 0:
        print(f"  community.general.haproxy without drain: true returned {-early:.2f} s BEFORE the "
              f"session closed (it waits for the DRAIN status only)")
    else:
        print(f"  community.general.haproxy without drain: true returned {early:.3f} s after the session closed")
    print()
    print(f"wall time of one ad-hoc toggle (ansible -m, drain of an idle server), median of {args.toggles}:")
    print(f"  ansible -m gentle.lb.haproxy_member      {toggles['ours']:6.2f} s")
    print(f"  ansible -m community.general.haproxy     {toggles['peer']:6.2f} s   ratio "
          f"{toggles['peer'] / toggles['ours']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
