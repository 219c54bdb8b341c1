"""The in-guest half of the gentle.lb.lvs_director integration tests.

Runs inside the user-mode Linux guest (lab/uml/run --netns-lab), against the
real IPVS and Debian's keepalived, and writes what it observed to
OUT/results.json (after every step, so a failure still leaves the story);
the host-side tests (test_*.py beside this file) assert on it.

    LAB_PORTS=7 LAB_CLIENTS=2 lab/uml/run --netns-lab --agent -- .venv/bin/python guest.py checks --out DIR --cert C --key K
    LAB_PORTS=7 LAB_CLIENTS=2 lab/uml/run --netns-lab --agent -- .venv/bin/python guest.py rolling --out DIR --config F

Lab (from lab/uml/netns-lab.sh, LAB_PORTS=7 so ports 80/443 are free):
client 192.168.1.2 and client2 192.168.2.2 -> director (VIPs 10.0.0.100 and 10.0.0.101 on dummy0,
two "carriers") -> rs1 172.16.1.2 and rs2 172.16.2.2 (NAT).  keepalived runs
in the foreground with its pid files on the guest's tmpfs /run, everything
of the role goes under /run/lvsd (root-owned, as keepalived's script
security wants), and Ansible's temporary files too: nothing is written to the
host except OUT.
"""

import argparse
import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
CHECKAPP = os.path.join(HERE, "checkapp.py")
PLAYBOOKS = os.path.join(HERE, "playbooks")
ON_HOST = os.path.join(REPO, "lab", "uml", "on-host")
GUEST_PY = "/usr/bin/python3"

RUN = "/run/lvsd"
STATE = RUN + "/state"
MAINT = RUN + "/maint"
BIN = RUN + "/bin"
CONF = RUN + "/etc/keepalived.conf"
PIDFILE = RUN + "/ka.pid"
KA_LOG = RUN + "/keepalived.log"
NOTIFY_LOG = RUN + "/notify.log"
HOOK_LOG = RUN + "/hook.log"

VIPS = ["10.0.0.100", "10.0.0.101"]
CLIENTS = ["client", "client2"]  # the netns lab's client namespaces (LAB_CLIENTS=2)
RS = {"rs1": "172.16.1.2", "rs2": "172.16.2.2"}
SORRY_IP = "10.0.0.254"
SORRY = SORRY_IP + ":8099"
# www's check: a hung page is out within delay_loop + connect_timeout (retry 0).
WWW_DELAY_LOOP = 2
WWW_CONNECT_TIMEOUT = 1
HOST_HEADER = "www.example.test"
# One start of the guest's Python on a quiet 2-core host; the guest measures
# its own at the start (calibrate) and scales every stage's budget by the ratio.
QUIET_PYTHON_START = 0.2
# Fixed part of a timing bound: the table is polled every 0.05-0.1 s, and
# keepalived needs a moment to act on a check's result.  The guest's measured
# stall in the same window comes on top (Lab.stall).
POLL_SLACK = 0.5


class Lab(object):
    """The part's record (OUT/results.json, rewritten after every change) and
    the tools it is measured with.

    A part is a sequence of named stages, each with a budget: twice what it
    takes on a quiet host, times the guest's speed factor (calibrate).  A
    stage over its budget fails nothing by itself; when something fails, the
    host names the stage it was in and how far over budget each one ran."""

    def __init__(self, out):
        self.out = out
        self.results = {"stages": []}
        self.procs = []
        self.t_start = time.monotonic()
        self.factor = 1.0
        self.lags = []  # (seconds since start, how late a 50 ms sleep woke up)

    # -- bookkeeping --

    def now(self):
        return time.monotonic() - self.t_start

    def record(self, key, value):
        self.results[key] = value
        self.save()

    @contextlib.contextmanager
    def stage(self, name, quiet):
        """A stage that takes about QUIET seconds on a quiet host.  Its budget:
        twice that, times the speed factor, plus the guest's stall meanwhile."""
        started = self.now()
        entry = {"name": name, "started": round(started, 2), "budget": round(2 * quiet * self.factor, 1)}
        self.results["current_stage"] = entry
        self.save()
        yield
        entry["seconds"] = round(self.now() - started, 2)
        entry["stall"] = self.stall(started)
        self.results["stages"].append(entry)
        del self.results["current_stage"]
        self.save()

    def calibrate(self):
        """The guest's speed now: three starts of its Python against a quiet host's."""
        times = []
        for unused in range(3):
            started = time.monotonic()
            subprocess.run([GUEST_PY, "-c", "pass"], check=True)
            times.append(time.monotonic() - started)
        python_start = sorted(times)[1]
        self.factor = max(1.0, python_start / QUIET_PYTHON_START)
        self.record("calibration", {"python_start": round(python_start, 3), "quiet_python_start": QUIET_PYTHON_START,
                                    "factor": round(self.factor, 2)})

    def watch(self):
        """In the background: how late the guest wakes up from a 50 ms sleep
        (the lab's own delay, which a measured time includes), and a progress
        file the host reads when the guest is cut short."""
        def run():
            last_beat = 0.0
            while True:
                before = time.monotonic()
                time.sleep(0.05)
                late = time.monotonic() - before - 0.05
                self.lags.append((before + 0.05 - self.t_start, late))
                if self.now() - last_beat >= 2:
                    last_beat = self.now()
                    stage = self.results.get("current_stage")
                    publish_json(os.path.join(self.out, "progress.json"), {
                        "now": round(last_beat, 1), "stage": stage,
                        "stall": self.stall(stage["started"]) if stage else 0})
        threading.Thread(target=run, daemon=True).start()

    def log_connections(self):
        """GENTLE_LB_IPVS_CONN_LOG=1: every change of IPVS's connection table
        (client port, VIP, real server, state) to OUT/connections.log, for
        reading a failed request of the load generator."""
        def run():
            known = {}
            with open(os.path.join(self.out, "connections.log"), "w") as log:
                while True:
                    with open("/proc/net/ip_vs_conn") as handle:
                        lines = handle.read().splitlines()[1:]
                    seen = {}
                    for line in lines:
                        f = line.split()
                        key = (hexaddr(f[1] + ":" + f[2]), hexaddr(f[3] + ":" + f[4]))
                        seen[key] = (hexaddr(f[5] + ":" + f[6]), f[7])
                    for key, value in seen.items():
                        if known.get(key) != value:
                            log.write("%.2f %s -> %s %s %s\n" % (self.now(), key[0], key[1], value[0], value[1]))
                    for key in set(known) - set(seen):
                        log.write("%.2f %s -> %s gone\n" % (self.now(), key[0], key[1]))
                    log.flush()
                    known = seen
                    time.sleep(0.25)
        threading.Thread(target=run, daemon=True).start()

    def stall(self, since, until=None):
        """Seconds the guest woke up late between two times of the part (see watch)."""
        until = self.now() if until is None else until
        return round(sum(late for t, late in list(self.lags) if since <= t <= until), 2)

    def save(self):
        publish_json(os.path.join(self.out, "results.json"), self.results)

    # -- processes --

    def sh(self, *argv, check=True, timeout=120, **kw):
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kw)
        if check and proc.returncode != 0:
            raise RuntimeError("%s failed (rc %d): %s%s" % (" ".join(argv), proc.returncode,
                                                            proc.stdout, proc.stderr))
        return proc

    def spawn(self, argv, log):
        with open(log, "w") as handle:
            proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    # -- IPVS --

    def table(self, column=3):
        """{"tcp:10.0.0.100:80": {"172.16.1.2:80": weight}, "fwmark:1": {...}} from
        /proc/net/ip_vs (column 4: ActiveConn).  The test reads the kernel's
        file, not ipvsadm: a fork costs a lot under UML and the pollers here
        must not load the guest they measure.  IPv4 only, as the lab."""
        table, current = {}, None
        with open("/proc/net/ip_vs") as handle:
            for line in handle:
                fields = line.split()
                if fields and fields[0] in ("TCP", "UDP", "SCTP"):
                    current = table.setdefault("%s:%s" % (fields[0].lower(), hexaddr(fields[1])), {})
                elif fields and fields[0] == "FWM":
                    current = table.setdefault("fwmark:%d" % int(fields[1], 16), {})
                elif fields[:1] == ["->"] and current is not None and fields[1] != "RemoteAddress:Port":
                    current[hexaddr(fields[1])] = int(fields[column])
        return table

    def wait(self, predicate, timeout, interval=0.1):
        """Seconds until predicate(table) held, or None after timeout."""
        started = time.monotonic()
        while True:
            try:
                if predicate(self.table()):
                    return round(time.monotonic() - started, 2)
            except (KeyError, TypeError):
                pass
            if time.monotonic() - started > timeout:
                return None
            time.sleep(interval)

    def measure(self, key, predicate, timeout, what, interval=0.05):
        """Record in KEY the seconds until predicate(table) held, with the
        guest's stall in that time under stall[KEY]; when it never held,
        None and, under missed[KEY], what was waited for and the table then."""
        started = self.now()
        seconds = self.wait(predicate, timeout, interval)
        self.results[key] = seconds
        self.results.setdefault("stall", {})[key] = self.stall(started)
        if seconds is None:
            self.results.setdefault("missed", {})[key] = "%s: not within %g s; the table then: %s" % (
                what, timeout, json.dumps(self.table(), sort_keys=True))
        self.save()
        return seconds

    # -- Ansible --

    def playbook(self, playbook, extra_vars, inventory=None, label=None):
        """ansible-playbook on the host (lab/uml/on-host), its tasks here in the
        guest through the agent ("uml" connection, the inventory's): the
        controller's own work at the host's speed, the modules on this
        director, as a controller reaching a director over SSH would run them."""
        label = label or "run"
        # The host reads these: they go to OUT, not to the guest's /run.
        vars_file = os.path.join(self.out, "vars-%s.json" % label)
        with open(vars_file, "w") as handle:
            json.dump(extra_vars, handle)
        env = {
            "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            # Module files are put and run on the guest's tmpfs.
            "ANSIBLE_REMOTE_TMP": RUN + "/ansible-remote",
            # The director's Debian Python: no Ansible installed there, as on a real director.
            "ANSIBLE_PYTHON_INTERPRETER": GUEST_PY,
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_DEPRECATION_WARNINGS": "false",
        }
        peers = os.path.join(REPO, ".venv-peers", "lib", "python3.13", "site-packages")
        if os.environ.get("GENTLE_LB_PROFILE") and os.path.isdir(peers):
            # Per-task times (ansible.posix.profile_tasks from the peers venv), for tuning only.
            env["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS + ":" + peers
            env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        # The host writes the output to OUT/<label>.log as it comes, so a run
        # the guest's timeout cuts short still shows how far it got.
        log = os.path.join(self.out, "%s.log" % label)
        cmd = [ON_HOST, "--output", log, "--cwd", REPO]
        cmd += ["--env=%s=%s" % item for item in sorted(env.items())]
        cmd += ["--", os.path.join(VENV_BIN, "ansible-playbook"),
                "-i", inventory or os.path.join(PLAYBOOKS, "inventory"),
                os.path.join(PLAYBOOKS, playbook), "-e", "@" + vars_file]
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        elapsed = round(time.monotonic() - started, 2)
        stdout = read(log) + proc.stdout + proc.stderr
        recap = {}
        for line in stdout.splitlines():
            match = re.match(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", line)
            if match:
                recap[match.group(1)] = {"ok": int(match.group(2)), "changed": int(match.group(3)),
                                         "unreachable": int(match.group(4)), "failed": int(match.group(5))}
        return {"rc": proc.returncode, "elapsed": elapsed, "recap": recap,
                "changed": sum(h["changed"] for h in recap.values()),
                "tail": stdout[-3000:]}

    # -- keepalived --

    def ka_log(self):
        with open(KA_LOG) as handle:
            return handle.read()


def hexaddr(text):
    """ "0A000064:0050" -> "10.0.0.100:80" (IPv4, as /proc/net/ip_vs writes it)."""
    addr, port = text.split(":")
    return "%s:%d" % (".".join(str(int(addr[i:i + 2], 16)) for i in range(0, 8, 2)), int(port, 16))


def publish_json(path, data):
    """Write PATH whole or not at all (the host may read it at any time)."""
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.rename(path + ".tmp", path)


def read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def touch(path):
    with open(path, "w") as handle:
        handle.write("x\n")


def rm(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_script(path, text):
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o755)


def wait_files(paths, timeout=30):
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(p) for p in paths):
        if time.monotonic() > deadline:
            raise RuntimeError("not ready: %s" % [p for p in paths if not os.path.exists(p)])
        time.sleep(0.05)


def prepare(lab):
    """Directories of the role under /run (root-owned), the second VIP, an empty table."""
    for d in (RUN, STATE, BIN, RUN + "/ansible-remote"):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
    lab.sh("ipvsadm", "-C")  # the netns lab's own service: keepalived owns the table here
    lab.sh("ip", "addr", "add", VIPS[1] + "/32", "dev", "dummy0")
    write_script(BIN + "/hook", "#!/bin/sh\necho \"$*\" >>%s\n" % HOOK_LOG)


def client_get(lab, url, count=1, insecure=False):
    """GETs from the lab's client namespace, through the director."""
    argv = ["ip", "netns", "exec", "client", GUEST_PY, CHECKAPP, "get", url, "--count", str(count)]
    if insecure:
        argv.append("--insecure")
    return json.loads(lab.sh(*argv).stdout)


# --------------------------------------------------------------------------
# Two parts, one guest each (the host test boots both at once):
#
# "checks": render + validate + start; client traffic over two carriers x
# HTTP/HTTPS; a hung health page; the sorry server; MISC_CHECK misc_dynamic;
# a drain through the maintenance file that waits for in-flight requests and
# survives a reload (a weight change); the restore.
#
# "rolling": render + start; a rolling deploy of the app (v1 -> v2) with
# gentle.lb.rolling_deploy and its lvs_director binding (keepalived's
# maintenance files), under load from the client namespace on both carriers.
# --------------------------------------------------------------------------

WWW = ["tcp:%s:80" % v for v in VIPS]
TLS = ["tcp:%s:443" % v for v in VIPS]
APP = ["tcp:%s:8080" % v for v in VIPS]
ECHO = "tcp:%s:7" % VIPS[0]
APPS = RUN + "/apps"


def rs(name, port):
    return "%s:%d" % (RS[name], port)


def lab_vars(part):
    real = [{"name": "web1", "ip": RS["rs1"], "weight": 2},
            {"name": "web2", "ip": RS["rs2"], "weight": 1}]
    checks = [
        {"name": "www", "vips": VIPS, "port": 80, "scheduler": "wrr", "delay_loop": WWW_DELAY_LOOP,
         "sorry_server": {"ip": SORRY_IP, "port": 8099},
         "check": {"type": "HTTP_GET", "path": "/health", "virtualhost": HOST_HEADER,
                   "connect_timeout": WWW_CONNECT_TIMEOUT, "retry": 0}},
        {"name": "www-tls", "vips": VIPS, "port": 443, "delay_loop": 5, "maintenance_check": False,
         "check": {"type": "SSL_GET", "path": "/health", "virtualhost": HOST_HEADER,
                   "digest": hashlib.md5(b"OK\n").hexdigest(),  # nosec - keepalived's digest is MD5
                   "connect_timeout": 1, "retry": 1, "delay_before_retry": 1}},
        {"name": "echo", "vip": VIPS[0], "port": 7, "scheduler": "rr", "delay_loop": 5,
         "maintenance_check": False, "check": {"type": "TCP_CHECK", "connect_timeout": 1}},
        # misc_timeout as for the maintenance checks (lab_vars): a lost MISC_CHECK never runs again.
        {"name": "dyn", "fwmark": 1, "real_port": 80, "delay_loop": 5, "maintenance_check": False,
         "check": {"type": "MISC_CHECK", "misc_path": BIN + "/dynweight", "misc_dynamic": True,
                   "misc_timeout": 20}},
    ]
    rolling = [
        # A check that tolerates one slow answer: under a loaded host (other
        # guests) a 1-s timeout without retry took both nodes out at once.
        {"name": "app", "vips": VIPS, "port": 8080, "scheduler": "wrr", "delay_loop": 2,
         "check": {"type": "HTTP_GET", "path": "/health", "connect_timeout": 2, "retry": 1,
                   "delay_before_retry": 1}},
    ]
    return {
        "lab_real_servers": real,
        "lab_real_servers_reweighted": [dict(r, weight=3) if r["name"] == "web2" else r for r in real],
        "lab_virtual_servers": checks if part == "checks" else rolling,
        "lab_reload_method": "command",
        "lab_repo": REPO,
        "lab_apps": APPS,
        "lab_playbooks": PLAYBOOKS,
        "lab_drain_timeout": 5,
        "lvs_director_install": False,
        "lvs_director_config_path": CONF,
        "lvs_director_notify_script": BIN + "/keepalived-lvs-notify",
        "lvs_director_maintenance_dir": MAINT,
        "lvs_director_notify_log": NOTIFY_LOG,
        "lvs_director_notify_hook": BIN + "/hook",
        "lvs_director_notify_syslog": False,
        "lvs_director_reload_command": [BIN + "/ka-reload"],
        "lvs_director_pidfile": PIDFILE,
        "lvs_director_maintenance_delay_loop": 2,
        # keepalived 2.2.7 stops running a MISC_CHECK for good when its script
        # times out as it exits (acassen/keepalived#2363, "child ... lost"); a
        # guest starved by the host's other suites reached the role's 5 s.
        "lvs_director_maintenance_timeout": 20,
        "lvs_director_router_id": "uml-lab",
        "lvs_director_poll_interval": 1,
    }


def start_checkapps(lab, args):
    ready = []
    for name, ip in sorted(RS.items()):
        ready.append("%s/%s.ready" % (STATE, name))
        lab.spawn(["ip", "netns", "exec", name, GUEST_PY, CHECKAPP, "serve", "--name", name,
                   "--bind", ip, "--http", "80", "--https", "443", "--cert", args.cert,
                   "--key", args.key, "--host", HOST_HEADER, "--state-dir", STATE,
                   "--ready", ready[-1]], "%s/%s.log" % (STATE, name))
    ready.append(STATE + "/sorry.ready")
    lab.spawn([GUEST_PY, CHECKAPP, "serve", "--name", "sorry", "--bind", SORRY_IP,
               "--http", "8099", "--state-dir", STATE, "--ready", ready[-1]], STATE + "/sorry.log")
    wait_files(ready)


def start_apps(lab):
    """The app of the rolling deploy, v1, through lab/app/ctl.py (as the deploy does)."""
    os.makedirs(APPS, exist_ok=True)
    for index, (name, ip) in enumerate(sorted(RS.items()), 1):
        web = "web%d" % index
        touch("%s/%s.healthy" % (APPS, web))
        lab.sh("ip", "netns", "exec", name, GUEST_PY, os.path.join(REPO, "lab", "app", "ctl.py"),
               "start", "--port", "8080", "--bind", ip, "--version", "v1", "--name", web,
               "--pidfile", "%s/%s.pid" % (APPS, web), "--health-file", "%s/%s.healthy" % (APPS, web))


def sessions(lab):
    """{"tcp:VIP:PORT": {"RS:PORT": ActiveConn}}"""
    return lab.table(column=4)


def play_sections(stdout):
    """{play name: number of "changed:" task results in it} of an ansible-playbook run."""
    sections, name = {}, None
    for line in stdout.splitlines():
        match = re.match(r"^PLAY \[(.*)\] \*+", line)
        if match:
            name = match.group(1)
            sections[name] = 0
        elif name and line.startswith("changed:"):
            sections[name] += 1
    return sections


def debug_vars(stdout, var):
    """Every `debug: var=VAR` printed by a run, decoded."""
    found = []
    for match in re.finditer(r'ok: \[[^\]]+\] => (\{\n    "%s": .*?\n\})' % re.escape(var), stdout, re.S):
        found.append(json.loads(match.group(1))[var])
    return found


def start_director(lab, part, expected):
    """Role run 1: render, validate, install; its reload command starts keepalived."""
    write_script(BIN + "/ka-reload", """#!/bin/sh
# lvs_director_reload_command of the lab: SIGHUP keepalived, or start it (in
# the foreground, detached, logging to a file) when it is not running.
pid=$(cat %(pid)s 2>/dev/null)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    exec kill -HUP "$pid"
fi
setsid keepalived -f %(conf)s -n -l -D -p %(pid)s -r %(run)s/vrrp.pid -c %(run)s/check.pid \\
    </dev/null >>%(log)s 2>&1 &
""" % {"pid": PIDFILE, "conf": CONF, "run": RUN, "log": KA_LOG})
    os.makedirs(os.path.dirname(CONF), exist_ok=True)
    extra = lab_vars(part)
    with lab.stage("role run 1: render, validate, start keepalived", quiet=25):
        lab.record("run1", lab.playbook("director.yml", extra, label="run1"))
        lab.record("config", read(CONF))
        run1 = lab.results["run1"]
        if run1["rc"] != 0:
            raise RuntimeError("role run 1 failed (rc %d):\n%s" % (run1["rc"], run1["tail"]))
        ready = lab.measure("table_ready_seconds", lambda t: all(t[s] == w for s, w in expected.items()), 30,
                            "the IPVS table of the configuration after role run 1")
        lab.record("table_after_start", lab.table())
        if ready is None:
            raise RuntimeError(lab.results["missed"]["table_ready_seconds"])
    return extra


def part_checks(lab, args):
    write_script(BIN + "/dynweight", "#!/bin/sh\nexit 7\n")  # misc_dynamic: weight 7 - 2 = 5
    with lab.stage("servers up", quiet=7):
        start_checkapps(lab, args)
    expected = {s: {rs("rs1", 80): 2, rs("rs2", 80): 1} for s in WWW}
    expected.update({s: {rs("rs1", 443): 2, rs("rs2", 443): 1} for s in TLS})
    expected[ECHO] = {rs("rs1", 7): 2, rs("rs2", 7): 1}
    expected["fwmark:1"] = {rs("rs1", 80): 5, rs("rs2", 80): 5}
    extra = start_director(lab, "checks", expected)

    with lab.stage("client traffic", quiet=5):
        # Traffic from the client namespace through both carriers, HTTP and HTTPS.
        lab.record("client_www", {v: client_get(lab, "http://%s/" % v, 3) for v in VIPS})
        lab.record("client_tls", {v: client_get(lab, "https://%s/" % v, 2, insecure=True) for v in VIPS})

    with lab.stage("hung page out and back", quiet=6):
        # web1's health page hangs on port 80; the port stays open.
        hang = "%s/rs1.80.hang" % STATE
        touch(hang)
        per_service = {}
        started, t_started = time.monotonic(), lab.now()
        while len(per_service) < len(WWW) and time.monotonic() - started < 15:
            table = lab.table()
            for svc in WWW:
                if svc not in per_service and table.get(svc, {}).get(rs("rs1", 80)) == 0:
                    per_service[svc] = round(time.monotonic() - started, 2)
            time.sleep(0.05)
        lab.record("hang_out_seconds", per_service)
        lab.results.setdefault("stall", {})["hang_out_seconds"] = lab.stall(t_started)
        with socket.create_connection((RS["rs1"], 80), timeout=2):
            lab.record("hang_port_open", True)
        lab.record("hang_table", lab.table())
        lab.record("hang_client", client_get(lab, "http://%s/" % VIPS[0], 3))
        rm(hang)
        lab.measure("recover_seconds", lambda t: all(t[s][rs("rs1", 80)] == 2 for s in WWW), 15,
                    "web1 back at weight 2 in www on both carriers after its page recovered")

    with lab.stage("maintenance file by hand", quiet=5):
        # A maintenance file by hand (address:port: this port only), as an operator
        # would: keepalived quiesces web2 in www within maintenance delay_loop + 1 s.
        os.makedirs(MAINT, exist_ok=True)
        touch(MAINT + "/" + rs("rs2", 80))
        lab.measure("maint_file_out_seconds", lambda t: all(t[s][rs("rs2", 80)] == 0 for s in WWW), 15,
                    "web2 at weight 0 in www after its maintenance file appeared")
        lab.record("maint_file_table", lab.table())
        rm(MAINT + "/" + rs("rs2", 80))
        lab.measure("maint_file_back_seconds", lambda t: all(t[s][rs("rs2", 80)] == 1 for s in WWW), 15,
                    "web2 back at weight 1 in www after its maintenance file went")

    with lab.stage("sorry server in and out", quiet=6):
        # Every real server of www down: the sorry server takes over.
        for name in RS:
            touch("%s/%s.80.down" % (STATE, name))
        lab.measure("sorry_in_seconds", lambda t: all(SORRY in t[s] for s in WWW), 15,
                    "the sorry server in www with every real server down")
        lab.record("sorry_table", lab.table())
        lab.record("sorry_client", client_get(lab, "http://%s/" % VIPS[1], 2))
        log_offset, recovered_at = len(lab.ka_log()), time.time()
        for name in RS:
            rm("%s/%s.80.down" % (STATE, name))
        lab.measure("sorry_out_seconds", lambda t: all(SORRY not in t[s] and t[s][rs("rs1", 80)] == 2 for s in WWW),
                    15, "the sorry server out of www again, web1 back")
        lab.record("sorry_out_keepalived", web1_recovery_in_log(lab, log_offset, recovered_at))
        # Both real servers back before the next stage: its drain of web1 needs
        # web2 in rotation (min_active 1), and in a slowed guest web2's check
        # can come back a check later than web1's.  Not a promise, so only
        # recorded: the sorry server's promise is the first server's check.
        lab.record("sorry_web2_back_seconds", lab.wait(
            lambda t: all(t[s][rs("rs2", 80)] == 1 for s in WWW), round(15 * lab.factor)))

    with lab.stage("drain with requests in flight, reload, restore", quiet=50):
        drain_reload_restore(lab, extra, expected)


KA_LOG_LINE = re.compile(r"^(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}): (.*)$")


def web1_recovery_in_log(lab, since, recovered_at):
    """When keepalived, after offset ``since`` of its log, first saw web1's
    health page pass and when it had enabled web1 in every www service, in
    seconds after ``recovered_at`` (time.time(); the log has whole seconds).
    The first is the promise (its next check); the time between the two is
    keepalived acting on that check, which a busy guest slows down and which
    the sorry server's bound takes from here, as measured, not as a guess."""
    first_pass, enabled = None, {}
    enabling = re.compile(r"Enabling service \[%s\]:tcp:80 of VS \[(%s)\]:tcp:80" % (
        re.escape(RS["rs1"]), "|".join(re.escape(vip) for vip in VIPS)))
    for line in lab.ka_log()[since:].splitlines():
        match = KA_LOG_LINE.match(line)
        if not match:
            continue
        at = time.mktime(time.strptime(match.group(1), "%a %b %d %H:%M:%S %Y"))
        if first_pass is None and match.group(2).startswith("HTTP status code success to [%s]:tcp:80" % RS["rs1"]):
            first_pass = at
        found = enabling.search(match.group(2))
        if found:
            enabled.setdefault(found.group(1), at)
    if first_pass is None or len(enabled) < len(VIPS):
        return None
    last_enabled = max(enabled.values())
    # recovered_at has fractions, the log does not: the whole second it fell in.
    recovered_second = int(recovered_at)
    return {"first_pass_seconds": first_pass - recovered_second,
            "acted_seconds": max(0, last_enabled - first_pass)}


def web1_maintenance_seen(lab, since):
    """The www services in which keepalived's log shows web1's maintenance
    check failing after offset ``since``: weight 0 from the maintenance file,
    not from a health check that a stalled guest failed for a moment."""
    pattern = r"Misc check for \[\[%s\]:tcp:80 VS \[([0-9.]+)\]:tcp:80\] by \[/usr/bin/test\] failed" % re.escape(RS["rs1"])
    return {"tcp:%s:80" % vip for vip in re.findall(pattern, lab.ka_log()[since:])}


def drain_reload_restore(lab, extra, expected):
    # One playbook: a drain of web1 through the maintenance file while requests
    # are in flight on it, a weight change for web2 (validate + SIGHUP) while
    # web1 is drained, the restore.
    held_ready = STATE + "/held.ready"
    holder = subprocess.Popen(
        ["ip", "netns", "exec", "client", GUEST_PY, CHECKAPP, "hold", "http://%s/hold" % VIPS[0],
         "--count", "6", "--ready", held_ready], stdout=subprocess.PIPE, text=True)
    wait_files([held_ready])
    time.sleep(0.3)
    lab.record("held_before", sessions(lab).get(WWW[0], {}))
    echo = socket.create_connection((VIPS[0], 7), timeout=3)
    echo.sendall(b"before\n")
    echo_before = echo.recv(64).decode().strip()

    samples, stop = [], threading.Event()
    log_offset = len(lab.ka_log())

    def sampler():
        while not stop.is_set():
            seen = web1_maintenance_seen(lab, log_offset) >= set(WWW)
            samples.append((round(time.monotonic() - lab.t_start, 2), lab.table(), seen))
            time.sleep(0.1)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    run2 = {}
    # How long keepalived_member gives keepalived to react to the maintenance
    # file before it puts the file back: the role's default is for a real
    # director; here keepalived's check processes run in a guest slowed by
    # the host's load, so it is scaled by the measured speed factor.
    extra = dict(extra, lvs_director_quiesce_timeout=round(30 * lab.factor))
    runner = threading.Thread(target=lambda: run2.update(
        lab.playbook("drain_reload_restore.yml", extra, label="run2")), daemon=True)
    t_run2 = time.monotonic()
    runner.start()
    lab.record("maint_quiesce_after_seconds", lab.wait(
        lambda t: (all(t[s][rs("rs1", 80)] == 0 for s in WWW) and web1_maintenance_seen(lab, log_offset) >= set(WWW))
        or not runner.is_alive(), 180))
    time.sleep(3)  # the requests in flight keep the drain waiting
    touch(STATE + "/release")
    lab.record("released_after_seconds", round(time.monotonic() - t_run2, 2))
    runner.join()
    stop.set()
    thread.join()
    lab.record("held_answers", json.loads(holder.communicate(timeout=30)[0]))
    echo.sendall(b"after\n")
    lab.record("held_echo", [echo_before, echo.recv(64).decode().strip()])
    echo.close()
    log = read(os.path.join(lab.out, "run2.log"))
    run2["plays"] = play_sections(log)
    run2["results"] = debug_vars(log, "lvs_director_result")
    lab.record("run2", run2)
    # From the quiesce to the restore web1 never had weight in www, not even
    # during the reload; no service ever disappeared.
    # The window opens once keepalived has seen the file in every www service
    # (a stalled guest can fail web1's health check for a moment before that).
    drained = [i for i, (unused, t, seen) in enumerate(samples)
               if seen and all(t[s][rs("rs1", 80)] == 0 for s in WWW)]
    window = samples[drained[0]:drained[-1] + 1] if drained else []
    lab.record("drain_window", {
        "samples": len(window),
        "seconds": round(window[-1][0] - window[0][0], 2) if window else 0,
        "rs1_weights_seen": sorted({t[s][rs("rs1", 80)] for unused, t, _seen in window for s in WWW}),
        "web2_weights_seen": sorted({t[s][rs("rs2", 80)] for unused, t, _seen in window for s in WWW}),
        "services_missing": sorted({s for unused, t, _seen in samples for s in expected if s not in t}),
    })
    lab.record("table_after_run2", lab.table())
    text = lab.ka_log()
    lab.record("reload_log", {"reloading": text.count("Reloading ..."),
                              "starting": text.count("Starting Keepalived"),
                              "stopping": text.count("Stopping")})
    time.sleep(1.5)  # the last notify scripts may still be starting (forks are slow here)
    lab.record("notify_log", read(NOTIFY_LOG).splitlines())
    lab.record("hook_log", read(HOOK_LOG).splitlines())


def part_rolling(lab, args):
    """The role already rendered and validated --config on the host
    (conftest.py; the checks part proves the role's own run in the guest);
    keepalived starts on that file."""
    with lab.stage("apps up", quiet=3):
        start_apps(lab)
    expected = {s: {rs("rs1", 8080): 2, rs("rs2", 8080): 1} for s in APP}
    # The maintenance directory of the configuration rendered on the host.
    maintenance = os.path.join(args.out, "maint")
    os.makedirs(maintenance, exist_ok=True)
    # keepalived's reaction to a maintenance file, scaled as in drain_reload_restore.
    extra = dict(lab_vars("rolling"), lab_maintenance_dir=maintenance, lab_quiesce_timeout=round(20 * lab.factor))
    with lab.stage("keepalived up", quiet=2):
        lab.spawn(["keepalived", "-f", args.config, "-n", "-l", "-D", "-p", PIDFILE,
                   "-r", RUN + "/vrrp.pid", "-c", RUN + "/check.pid"], KA_LOG)
        if lab.measure("table_ready_seconds", lambda t: all(t[s] == w for s, w in expected.items()), 30,
                       "the IPVS table of the rendered configuration") is None:
            raise RuntimeError(lab.results["missed"]["table_ready_seconds"])
    with lab.stage("rolling deploy of web1 and web2 under load", quiet=120):
        rolling_deploy(lab, extra, maintenance)


def rolling_deploy(lab, extra, maintenance):
    until = STATE + "/load.stop"
    loads = {}
    # The load generators' "t" (failure samples, timeline) counts from here.
    lab.record("load_started_at", round(lab.now(), 2))
    # One client address per carrier (LAB_CLIENTS=2): with one address for
    # both, the kernel may give a connection to each VIP the same source port,
    # and after NAT the real server sees both as one (a request then hangs).
    for vip, client in zip(VIPS, CLIENTS):
        loads[vip] = lab.spawn(
            ["ip", "netns", "exec", client, GUEST_PY, os.path.join(REPO, "lab", "loadgen.py"),
             # Stopped by the until-file; the duration only bounds a run that never ends.
             "--url", "http://%s:8080/" % vip, "--until-file", until, "--duration", "1200",
             "--concurrency", "2", "--rate", "5", "--keepalive-share", "0.3", "--slow-share", "0.1",
             "--slow-ms", "300", "--json-out", "%s/load-%s.json" % (STATE, vip), "--quiet"],
            "%s/load-%s.log" % (STATE, vip))
    samples, stop = [], threading.Event()

    def sampler():
        while not stop.is_set():
            samples.append((round(time.monotonic() - lab.t_start, 2), lab.table()))
            time.sleep(0.2)

    thread = threading.Thread(target=sampler, daemon=True)
    time.sleep(2)
    thread.start()
    lab.record("run3_started_at", round(lab.now(), 2))
    lab.record("run3", lab.playbook(os.path.join(REPO, "playbooks", "rolling_deploy.yml"),
                                    dict(extra, rolling_deploy_hosts="web"), label="run3"))
    time.sleep(2)
    stop.set()
    thread.join()
    touch(until)
    for proc in loads.values():
        proc.wait(timeout=60)
    lab.record("load", {vip: json.loads(read("%s/load-%s.json" % (STATE, vip)) or "{}") for vip in VIPS})
    lab.record("app_after", {vip: client_get(lab, "http://%s:8080/version" % vip, 2) for vip in VIPS})
    lab.record("table_after_run3", lab.table())
    # Each node in turn at weight 0 in both app services, never both at once.
    # [web1 .100, web2 .100, web1 .101, web2 .101] weights, each change once.
    changes, times = [], []
    for when, t in samples:
        row = [t.get(s, {}).get(r) for s in APP for r in (rs("rs1", 8080), rs("rs2", 8080))]
        if not changes or changes[-1] != row:
            changes.append(row)
            times.append(when)
    lab.record("rolling_weights", changes)
    lab.record("rolling_weights_at", times)  # seconds of the part, for reading a failure sample
    log = read(os.path.join(lab.out, "run3.log"))
    # The role's calls, as their loop labels show them (one per director and round).
    lab.record("run3_calls", re.findall(r"^(?:ok|changed): \[web\d -> director\] => \(item=(lvs_director [^)]*)\)$",
                                        log, re.M))
    lab.record("maintenance_left", sorted(os.listdir(maintenance)))
    time.sleep(1.5)
    lab.record("notify_log", read(NOTIFY_LOG).splitlines())


PARTS = {"checks": part_checks, "rolling": part_rolling}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=sorted(PARTS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--config", help="rolling: keepalived.conf rendered by the role on the host")
    args = parser.parse_args(argv)
    if not os.path.exists("/run/netns/client"):
        print("guest.py: run me with lab/uml/run --netns-lab --agent (LAB_PORTS=7 LAB_CLIENTS=2)", file=sys.stderr)
        return 2
    lab = Lab(args.out)
    lab.watch()
    if os.environ.get("GENTLE_LB_IPVS_CONN_LOG") == "1":
        lab.log_connections()
    rc = 0
    try:
        lab.calibrate()
        prepare(lab)
        PARTS[args.part](lab, args)
        lab.record("completed", True)
    except Exception:  # noqa: BLE001 - reported to the host in results.json
        lab.record("error", traceback.format_exc())
        rc = 1
    finally:
        lab.results["stall_total"] = lab.stall(0)
        lab.results["stall_max"] = round(max([late for unused, late in lab.lags] or [0]), 2)
        lab.record("keepalived_log", lab.ka_log().splitlines()[-300:] if os.path.exists(KA_LOG) else [])
        pid = read(PIDFILE).strip()
        if pid.isdigit():
            try:
                os.kill(int(pid), 15)
            except OSError:
                pass
        lab.stop_all()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
