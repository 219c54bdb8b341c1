#!/usr/bin/env python3
"""How soon does a drain return once the last session is gone, and what does
one ad-hoc toggle cost?

Starts a real HAProxy (lab/haproxy_lab.py), holds a request open through it
to app/web3, starts a drain (the module file run directly by its own venv's
Python, as Ansible's module runner does, so Ansible's start-up and tear-down
-- the same for both -- do not blur the number), lets the request finish
after a random delay, and measures how long after that moment the module
returns.  Compared, in the same run and against the same HAProxy:

* ours:  ``gentle.lb.haproxy_member state=drained`` (default poll_interval 0.2,
         and poll_interval 0.05 for reference)
* peer:  ``community.general.haproxy state=drain wait=true drain=true`` from
         PyPI's ``ansible`` package in .venv-peers (lab/peers/setup.sh), at its
         default ``wait_interval`` (5 s) and at its smallest (1 s).
         (``drain: true`` is what makes it wait for the sessions: with
         ``state=drain wait=true`` alone it returns as soon as the status reads
         DRAIN, while the session is still open -- shown once, as "early".)

Then one ad-hoc toggle (``ansible localhost -m ...``, drain of an idle server)
for both, interleaved, as wall time and as CPU time (user + system of every
process of the call: the controller and the module), split into the module
side (the AnsiballZ payload Ansible built, executed directly) and the rest
(the controller: start-up, plugin loading, building the payload).  CPU time is
what a busy machine distorts least.  If the two venvs run different
ansible-core versions, the peer's collection is run under ours, so that both
sides of the comparison use the same ansible-core.

Numbers, not assertions: this is a benchmark, not a test.

    python3 bench/haproxy_drain.py [--version 2.6|3.0|3.2] [--runs 5] [--toggles 7] [--seed 1]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def ansible_core_version(venv: Path) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", "from ansible.release import __version__; "
                           "print(__version__)"], capture_output=True, text=True, check=True).stdout.strip()


def site_packages(venv: Path) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()


def env_for(venv: Path, collections: Path | str | None) -> dict:
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
        self.collections = collections
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
    # Same ansible-core for both sides: if the peers' venv has another one, its
    # collections run under ours.
    peer_venv, peer_collections = PEERS_VENV, None
    if ansible_core_version(PEERS_VENV) != ansible_core_version(OURS_VENV):
        peer_venv, peer_collections = OURS_VENV, site_packages(PEERS_VENV)
    ours = dict(socket=sock, backend="app", server="web3", state="drained")
    return {
        "ours": Tool("gentle.lb.haproxy_member state=drained (poll_interval 0.2, default)", OURS_VENV,
                     "gentle.lb.haproxy_member", ours, COLLECTIONS),
        "ours005": Tool("gentle.lb.haproxy_member state=drained poll_interval=0.05", OURS_VENV,
                        "gentle.lb.haproxy_member", dict(ours, poll_interval=0.05), COLLECTIONS),
        "peer": Tool("community.general.haproxy state=drain wait=true drain=true (wait_interval 5, default)",
                     peer_venv, "community.general.haproxy", peer, peer_collections),
        "peer1": Tool("community.general.haproxy state=drain wait=true drain=true wait_interval=1 (its minimum)",
                      peer_venv, "community.general.haproxy", dict(peer, wait_interval=1), peer_collections),
        "early": Tool("community.general.haproxy state=drain wait=true (no drain: true)",
                      peer_venv, "community.general.haproxy", dict(peer, drain=False), peer_collections),
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


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and all its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO, timeout=300)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or '"failed": true' in proc.stdout:
        raise RuntimeError(f"{command[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def payload_of(lab: HAProxyLab, tool: Tool) -> str:
    """The AnsiballZ file Ansible builds for this toggle, kept for direct runs."""
    keep = tempfile.mkdtemp(prefix="bench-ansiballz-")
    restore(lab)
    timed(tool.adhoc, dict(tool.env, ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=keep))
    (path,) = glob.glob(keep + "/**/AnsiballZ_*.py", recursive=True)
    return path


def toggles(lab: HAProxyLab, both: dict[str, Tool], rounds: int) -> dict[str, dict[str, float]]:
    """Medians per tool: ad-hoc wall and CPU, module-side wall and CPU,
    interleaved so that a busy moment of the machine hits both alike."""
    payloads = dict((key, payload_of(lab, tool)) for key, tool in both.items())
    samples = dict((key, []) for key in both)
    try:
        for _round in range(rounds):
            for key, tool in both.items():
                restore(lab)
                adhoc = timed(tool.adhoc, tool.env)
                restore(lab)
                module = timed([str(tool.venv / "bin" / "python"), payloads[key]], tool.env)
                samples[key].append(adhoc + module)
    finally:
        sizes = dict((key, os.path.getsize(path)) for key, path in payloads.items())
        for path in payloads.values():
            shutil.rmtree(Path(path).parents[1], ignore_errors=True)
    medians = {}
    for key, rows in samples.items():
        columns = list(zip(*rows))
        medians[key] = dict(wall=statistics.median(columns[0]), cpu=statistics.median(columns[1]),
                            module_wall=statistics.median(columns[2]), module_cpu=statistics.median(columns[3]),
                            payload=sizes[key])
    return medians


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="2.6", choices=["2.6", "3.0", "3.2"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--toggles", type=int, default=7, help="ad-hoc toggles per tool (median)")
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
        all_tools = tools(lab)
        print(f"HAProxy {lab.version}; ansible-core {ansible_core_version(OURS_VENV)} (ours), "
              f"{ansible_core_version(all_tools['peer'].venv)} (peer); {args.runs} runs per tool; hold times "
              + ", ".join(f"{h:.2f}" for h in holds) + " s")
        lags: dict[str, list[float]] = {}
        for key in ("ours", "ours005", "peer", "peer1"):
            tool = all_tools[key]
            lags[key] = []
            for hold in holds:
                lag, _wall = one_drain(lab, tool, hold)
                lags[key].append(lag)
            print(f"  {tool.label}:\n    returned after the last session closed: "
                  + ", ".join(f"{x:.3f}" for x in lags[key]) + " s")
        early, _wall = one_drain(lab, all_tools["early"], 2.0)
        toggle = toggles(lab, dict(ours=all_tools["ours"], peer=all_tools["peer"]), args.toggles)
        restore(lab)

    ours = statistics.median(lags["ours"])
    print()
    print(f"median, from the last session closing to the module returning (HAProxy {args.version}):")
    print(f"  gentle.lb.haproxy_member            {ours:7.3f} s")
    print(f"  gentle.lb.haproxy_member (0.05 s)   {statistics.median(lags['ours005']):7.3f} s")
    for key, name in (("peer", "community.general.haproxy (5 s)"), ("peer1", "community.general.haproxy (1 s)")):
        peer = statistics.median(lags[key])
        print(f"  {name:<35}{peer:7.3f} s   ratio {peer / ours:6.1f}x")
    if early < 0:
        print(f"  community.general.haproxy without drain: true returned {-early:.2f} s BEFORE the "
              f"session closed (it waits for the DRAIN status only)")
    else:
        print(f"  community.general.haproxy without drain: true returned {early:.3f} s after the session closed")
    print()
    print(f"one ad-hoc toggle (ansible -m, drain of an idle server), median of {args.toggles}, interleaved:")
    print("                                     wall      cpu   module: wall   cpu   payload")
    for key, name in (("ours", "gentle.lb.haproxy_member"), ("peer", "community.general.haproxy")):
        t = toggle[key]
        print(f"  {name:<28} {t['wall']:7.2f} s {t['cpu']:6.2f} s   {t['module_wall']:7.2f} s {t['module_cpu']:6.2f} s"
              f"   {t['payload'] // 1024} KiB")
    o, p = toggle["ours"], toggle["peer"]
    print(f"  ours / peer: wall {o['wall'] / p['wall']:.2f}, cpu {o['cpu'] / p['cpu']:.2f} "
          f"(module side {o['module_cpu'] - p['module_cpu']:+.3f} s cpu, controller side "
          f"{(o['cpu'] - o['module_cpu']) - (p['cpu'] - p['module_cpu']):+.3f} s cpu)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
