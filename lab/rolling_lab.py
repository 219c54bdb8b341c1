#!/usr/bin/env python3
"""The rolling-deploy lab: a real HAProxy, N app instances and a load generator.

Everything runs on 127.0.0.1 and is started and stopped by this file, for the
demo (lab/demo.py), the role's integration tests (tests/integration/role/)
and the benchmark (bench/rolling.py):

* N app instances (lab/app/app.py, version v1 by default), each its own
  process started through lab/app/ctl.py, exactly as the playbook's deploy
  tasks restart them (``ctl.py deploy`` stops the old process and starts the
  new version);
* one HAProxy (lab/haproxy_lab.py, 2.6 or 3.0) with a backend ``app`` of
  those instances (``option httpchk GET /health``, fast checks) and an admin
  socket;
* lab/loadgen.py, started and stopped on demand, sending a steady mix of
  keep-alive, new-connection and slow requests through HAProxy and counting
  every failure;
* a sampler that reads ``show stat`` every 50 ms while the load runs and
  records how many instances are in rotation (admin READY and health UP), so
  a test can assert the capacity floor was never crossed.

``start()`` writes an Ansible inventory (``inventory.yml`` in the work
directory): group ``lb`` (host ``lb1``) and group ``app`` (one host per
instance, ``ansible_connection: local``) with the role's variables -- the
bindings to HAProxy, the deploy tasks file lab/demo/deploy.yml, the health
gate -- so ``ansible-playbook -i <inventory> playbooks/rolling_deploy.yml``
rolls the lab from v1 to v2.

    from lab.rolling_lab import RollingLab
    with RollingLab(instances=4) as lab:
        lab.start_load()
        subprocess.run([... "ansible-playbook", "-i", lab.inventory, ...])
        summary = lab.stop_load()          # loadgen's JSON summary
        assert summary["failed"] == 0
        print(lab.versions())              # {"web1": "v2", ...}

CLI:  python3 lab/rolling_lab.py [--instances 4] [--haproxy 2.6] [--workdir DIR] up [--load]
(writes DIR/lab.json when it is up; the molecule scenario of the role uses it)
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lab.haproxy_lab import HAProxyLab, LabError, free_port, wait_until  # noqa: E402

CTL = HERE / "app" / "ctl.py"
LOADGEN = HERE / "loadgen.py"
DEMO_DIR = HERE / "demo"
LOCALHOST = "127.0.0.1"
BACKEND = "app"

# HAProxy health checks every 200 ms, DOWN after 2 failures, UP after 1
# success: the lab reacts within a second, so runs are short.
CHECKS = "inter 200ms fall 2 rise 1"
CHECK_INTER, CHECK_FALL, CHECK_RISE = 0.2, 2, 1

# Binding styles the inventory can describe.
BINDINGS = ("haproxy", "health_file")

_LIVE = set()


@atexit.register
def _stop_all():
    for lab in list(_LIVE):
        lab.stop()


class Node:
    """One app instance: name, port and its files in the work directory."""

    def __init__(self, name: str, port: int, root: Path):
        self.name = name
        self.port = port
        self.dir = root / name
        self.pidfile = self.dir / "app.pid"
        self.logfile = self.dir / "app.log"
        self.health_file = self.dir / "healthy"

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}/"


class RollingLab:
    """HAProxy + app instances + load generator; see the module docstring.

    instances     number of app instances (web1..webN)
    haproxy       "2.6", "3.0" or "3.2"
    version       the version every instance starts with
    binding       "haproxy" (drain through the admin socket) or "health_file"
                  (instances run with --health-file; the role moves the file
                  aside and reads HAProxy's view through the info module)
    master_worker HAProxy as production's systemd unit runs it (-W -S, a
                  master CLI); the bindings then name master_socket, so the
                  drain counts the sessions of every live worker
    workdir       keep everything here (default: a fresh temporary
                  directory, removed on stop())
    """

    def __init__(self, instances: int = 4, haproxy: str = "2.6", version: str = "v1",
                 binding: str = "haproxy", workdir=None, stop_timeout: float = 10.0,
                 master_worker: bool = False):
        if binding not in BINDINGS:
            raise LabError(f"binding {binding!r}: use one of {', '.join(BINDINGS)}")
        self.instances = instances
        self.haproxy_version = haproxy
        self.version = version
        self.binding = binding
        self.stop_timeout = stop_timeout
        self.master_worker = master_worker
        self._own_workdir = workdir is None
        # Short path: HAProxy's unix sockets live in it (108-byte limit).
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="rlab-"))
        self.nodes: list[Node] = []
        self.haproxy: HAProxyLab | None = None
        self.inventory = str(self.workdir / "inventory.yml")
        self._load: subprocess.Popen | None = None
        self._load_stop = self.workdir / "load.stop"
        self._load_json = self.workdir / "load.json"
        self._sampler: Sampler | None = None

    # --- lifecycle

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> "RollingLab":
        _LIVE.add(self)
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            nodes_dir = self.workdir / "nodes"
            self.nodes = [Node(f"web{i}", free_port(), nodes_dir) for i in range(1, self.instances + 1)]
            for node in self.nodes:
                node.dir.mkdir(parents=True, exist_ok=True)
                if self.binding == "health_file":
                    node.health_file.write_text("OK\n")
            self._ctl_all("start", self.version)
            self._start_haproxy()
            self.wait_in_rotation(self.instances, timeout=15)
            self.write_inventory()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop the load, every instance and HAProxy; remove the work directory."""
        self.stop_load(missing_ok=True)
        if self.nodes:
            try:
                self._ctl_all("stop")
            except LabError:
                pass
        if self.haproxy is not None:
            self.haproxy.stop()
            self.haproxy = None
        if self._own_workdir and os.environ.get("ROLLING_LAB_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)
        _LIVE.discard(self)

    def _start_haproxy(self):
        servers = [{"name": n.name, "options": "check", "app": None} for n in self.nodes]
        self.haproxy = HAProxyLab(
            version=self.haproxy_version, workdir=self.workdir / "haproxy",
            backends={BACKEND: {"balance": "roundrobin", "httpchk": "GET /health",
                                "default_server": CHECKS, "servers": servers}},
            # Checks every 200 ms, and a check may take up to 2 s (the lab's
            # "timeout check 2s"): a stopped instance refuses the check's
            # connection at once, so it is still marked DOWN within 0.4 s.
            master_worker=self.master_worker)
        # Servers with no in-process app point at "dead ports": give them the
        # ports of our app processes instead.
        for node in self.nodes:
            self.haproxy.dead_ports[node.name] = node.port
        self.haproxy.start()

    # --- app instances through ctl.py (what the deploy tasks use, too)

    def ctl_command(self, node: Node, action: str, version: str | None = None) -> list[str]:
        cmd = [sys.executable, str(CTL), action, "--pidfile", str(node.pidfile),
               "--stop-timeout", str(self.stop_timeout)]
        if action in ("start", "deploy"):
            cmd += ["--port", str(node.port), "--name", node.name, "--version", version,
                    "--logfile", str(node.logfile)]
            if self.binding == "health_file":
                cmd += ["--health-file", str(node.health_file)]
        return cmd

    def _ctl_all(self, action: str, version: str | None = None):
        """Run ctl.py for every instance at once (each Python start costs ~0.2 s)."""
        procs = [(n, subprocess.Popen(self.ctl_command(n, action, version), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)) for n in self.nodes]
        errors = []
        for node, proc in procs:
            out, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                errors.append(f"{node.name}: {err.strip() or out.strip()}")
        if errors:
            raise LabError(f"ctl.py {action} failed: " + "; ".join(errors))

    def stop_instance(self, name: str):
        """Stop one instance (for tests: "one instance already down")."""
        node = self.node(name)
        subprocess.run(self.ctl_command(node, "stop"), check=True, capture_output=True, text=True)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise LabError(f"no instance {name}")

    def pids(self) -> dict:
        """{instance: pid of its app}, for telling a restarted instance from one left alone."""
        return {n.name: n.pidfile.read_text().strip() for n in self.nodes if n.pidfile.exists()}

    def versions(self) -> dict:
        """{instance: version it serves now, or "down"} asked directly (not through HAProxy)."""
        result = {}
        for node in self.nodes:
            try:
                conn = http.client.HTTPConnection(LOCALHOST, node.port, timeout=2)
                conn.request("GET", "/version", headers={"Connection": "close"})
                result[node.name] = conn.getresponse().read().decode().strip()
                conn.close()
            except OSError:
                result[node.name] = "down"
        return result

    # --- HAProxy's view

    def server_rows(self) -> list[dict]:
        return [r for r in self.haproxy.show_stat(BACKEND) if r["type"] == "2"]

    def states(self) -> dict:
        """{instance: HAProxy status} e.g. {"web1": "UP", "web2": "DRAIN"}."""
        return {r["svname"]: r["status"] for r in self.server_rows()}

    def in_rotation(self) -> int:
        """Instances taking new requests: admin READY (not DRAIN/MAINT) and health UP."""
        return sum(1 for r in self.server_rows() if in_rotation(r))

    def wait_in_rotation(self, count: int, timeout: float = 10.0):
        wait_until(lambda: self.in_rotation() >= count, timeout=timeout, interval=0.05,
                   what=f"{count} instances UP in HAProxy")

    # --- load

    def start_load(self, rate: float = 150.0, concurrency: int = 12, duration: float = 600.0,
                   slow_share: float = 0.1, slow_ms: int = 300, sample: bool = True,
                   extra: list[str] | None = None):
        """Start lab/loadgen.py against HAProxy's frontend (and the sampler)."""
        if self._load is not None:
            raise LabError("load already running")
        self._load_stop.unlink(missing_ok=True)
        self._load_json.unlink(missing_ok=True)
        cmd = [sys.executable, str(LOADGEN), "--url", self.haproxy.frontend_url,
               "--duration", str(duration), "--until-file", str(self._load_stop),
               "--concurrency", str(concurrency), "--rate", str(rate),
               "--slow-share", str(slow_share), "--slow-ms", str(slow_ms),
               "--json-out", str(self._load_json), "--quiet", *(extra or [])]
        self._load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if sample:
            self._sampler = Sampler(self)
            self._sampler.start()
        # Let the load settle so the first node is drained under real traffic.
        time.sleep(0.5)

    def stop_load(self, missing_ok: bool = False) -> dict | None:
        """Stop the load; return loadgen's JSON summary plus "rotation" samples."""
        proc, self._load = self._load, None
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.stop()
        if proc is None:
            if missing_ok:
                return None
            raise LabError("no load running")
        self._load_stop.touch()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        try:
            summary = json.loads(self._load_json.read_text())
        except (OSError, ValueError):
            raise LabError(f"loadgen wrote no summary (rc={proc.returncode}): {err.strip()[-2000:]}")
        summary["line"] = out.strip()
        summary["rotation"] = sampler.samples if sampler else []
        return summary

    # --- inventory

    def inventory_data(self) -> dict:
        python = sys.executable
        lb_vars = {"lab_haproxy_socket": self.haproxy.admin_socket}
        if self.master_worker:
            lb_vars["lab_haproxy_master_socket"] = self.haproxy.master_socket
        app_vars = {
            "lab_python": python,
            "lab_ctl": str(CTL),
            "lab_stop_timeout": self.stop_timeout,
            "lab_version": "v2",
            "rolling_deploy_tasks_file": str(DEMO_DIR / "deploy.yml"),
            "rolling_deploy_health_url": "http://127.0.0.1:{{ lab_app_port }}/health",
            "rolling_deploy_health_body": "^OK {{ lab_versions[inventory_hostname] | default(lab_version) }}$",
            "rolling_deploy_health_retries": 20,
            "rolling_deploy_health_delay": 0.25,
            "rolling_deploy_drain_timeout": 60,
            "rolling_deploy_restore_timeout": 30,
            "lab_versions": {},
        }
        if self.binding == "haproxy":
            app_vars["rolling_deploy_bindings"] = [{
                "type": "haproxy", "delegate_to": "lb1", "backend": BACKEND,
                "server": "{{ inventory_hostname }}",
                "socket": "{{ hostvars['lb1'].lab_haproxy_socket }}",
            }]
            if self.master_worker:
                # Every live worker's sessions, the old ones' after a reload too.
                app_vars["rolling_deploy_bindings"][0]["master_socket"] = \
                    "{{ hostvars['lb1'].lab_haproxy_master_socket }}"
        else:
            # HAProxy probes /health, which fails while the file is aside (so
            # the health gate cannot use it): the gate asks /version instead.
            app_vars["rolling_deploy_health_url"] = "http://127.0.0.1:{{ lab_app_port }}/version"
            app_vars["rolling_deploy_health_body"] = "^{{ lab_versions[inventory_hostname] | default(lab_version) }}$"
            app_vars["rolling_deploy_bindings"] = [{
                "type": "health_file", "path": "{{ lab_health_file }}",
                "inter": CHECK_INTER, "fall": CHECK_FALL, "rise": CHECK_RISE,
                # HAProxy's view, read from where the file is (here the same machine).
                "info": {"type": "haproxy", "backend": BACKEND,
                         "server": "{{ inventory_hostname }}",
                         "socket": "{{ hostvars['lb1'].lab_haproxy_socket }}"},
            }]
        hosts = {}
        for node in self.nodes:
            hosts[node.name] = {
                "lab_app_port": node.port,
                "lab_app_pidfile": str(node.pidfile),
                "lab_app_logfile": str(node.logfile),
            }
            if self.binding == "health_file":
                hosts[node.name]["lab_health_file"] = str(node.health_file)
        return {"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": python,
                     "ansible_pipelining": True},
            "children": {
                "lb": {"hosts": {"lb1": lb_vars}},
                "app": {"vars": app_vars, "hosts": hosts},
            },
        }}

    def write_inventory(self):
        header = ("# Written by lab/rolling_lab.py for this lab run: HAProxy's admin socket,\n"
                  "# the app instances (local connection) and the rolling_deploy variables.\n")
        Path(self.inventory).write_text(header + to_yaml(self.inventory_data()))

    def endpoints(self) -> dict:
        return {
            "workdir": str(self.workdir), "inventory": self.inventory,
            "frontend": self.haproxy.frontend_url, "admin_socket": self.haproxy.admin_socket,
            "stats": self.haproxy.stats_url, "haproxy": self.haproxy.version,
            "instances": {n.name: n.url for n in self.nodes},
        }


def in_rotation(row: dict) -> bool:
    """A `show stat` server row that takes new requests: UP (or "UP 1/2" going
    down: still used) and not DRAIN/MAINT/NOLB."""
    return row["status"].startswith("UP") or row["status"] == "no check"


class Sampler(threading.Thread):
    """Records (seconds since start, in-rotation count, {server: status}) every 50 ms."""

    def __init__(self, lab: RollingLab, interval: float = 0.05):
        super().__init__(name="rotation-sampler", daemon=True)
        self.lab = lab
        self.interval = interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()

    def run(self):
        while not self._stop.is_set():
            try:
                rows = self.lab.server_rows()
            except (OSError, LabError):
                rows = None
            if rows is not None:
                self.samples.append({
                    "t": round(time.monotonic() - self._t0, 3),
                    "in_rotation": sum(1 for r in rows if in_rotation(r)),
                    "status": {r["svname"]: r["status"] for r in rows},
                })
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self.join(timeout=5)


# --------------------------------------------------------------------------
# A small YAML writer (stdlib only): dicts, lists and scalars, strings quoted.


def to_yaml(data, indent: int = 0) -> str:
    pad = "  " * indent
    lines = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (dict, list)) and value:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(value, indent + 1).rstrip("\n"))
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    elif isinstance(data, list):
        for value in data:
            if isinstance(value, dict) and value:
                body = to_yaml(value, indent + 1).rstrip("\n").split("\n")
                lines.append(f"{pad}- {body[0].lstrip()}")
                lines.extend(body[1:])
            else:
                lines.append(f"{pad}- {_scalar(value)}")
    return "\n".join(lines) + "\n"


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(str(value))


# --------------------------------------------------------------------------
# CLI


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--haproxy", default="2.6", choices=("2.6", "3.0"))
    parser.add_argument("--binding", default="haproxy", choices=BINDINGS)
    parser.add_argument("--workdir", help="keep everything here (not removed at the end)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the lab, print its endpoints, run until Ctrl-C or SIGTERM")
    up.add_argument("--load", action="store_true",
                    help="also start the load generator; it stops when <workdir>/load.stop exists "
                         "and then writes its summary to <workdir>/load.json")
    args = parser.parse_args(argv)

    with RollingLab(instances=args.instances, haproxy=args.haproxy, binding=args.binding,
                    workdir=args.workdir) as lab:
        if args.load:
            lab.start_load()
        # Everything a playbook needs, for tools that cannot read the YAML
        # inventory (molecule's converge adds the hosts from it); written last,
        # atomically: its presence means the lab is up.
        state = dict(lab.endpoints(), pid=os.getpid(), inventory_data=lab.inventory_data())
        tmp = lab.workdir / "lab.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(lab.workdir / "lab.json")
        for key, value in lab.endpoints().items():
            print(f"{key:<13} {value}")
        print(f"\nroll it:  ansible-playbook -i {lab.inventory} playbooks/rolling_deploy.yml")
        print("running; Ctrl-C to stop", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
