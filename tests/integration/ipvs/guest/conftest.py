# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the in-guest IPVS suite.  Runs only inside the user-mode Linux
guest started by ../test_ipvs_uml.py (lab/uml/run --netns-lab): every test
starts from an empty IPVS table, and real connections are held from the
lab's client namespace through the VIP 10.0.0.100 to rs1..rs3 (172.16.N.2).

Verification never relies on the parser under test: ``Director.dests()``
reads ``ipvsadm -Sn`` and ``ipvsadm -Ln --thresholds`` with its own few lines.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from helpers import ensure_collection_link, run_module  # noqa: E402  pylint: disable=wrong-import-position

LAB = os.path.join(REPO, "lab", "uml")
VIP = "10.0.0.100"
SYSTEM_PYTHON = "/usr/bin/python3"


def in_uml():
    try:
        with open("/proc/cpuinfo") as handle:
            return os.environ.get("LAB_UML_GUEST") == "1" and "User Mode Linux" in handle.read()
    except IOError:
        return False


@pytest.fixture(scope="session", autouse=True)
def inside_uml_only():
    if not in_uml():
        pytest.exit("tests/integration/ipvs/guest runs only inside the user-mode Linux guest (run "
                    "pytest tests/integration/ipvs, which boots it); refusing to touch this machine's IPVS",
                    returncode=4)


# --------------------------------------------------------------------------
# Results for the host (../test_ipvs_uml.py)
# --------------------------------------------------------------------------

RESULTS = {}


def pytest_runtest_logreport(report):
    entry = RESULTS.setdefault(report.nodeid, dict(outcome="passed", longrepr="", duration=0.0))
    entry["duration"] += report.duration
    if report.failed:
        entry["outcome"] = "failed"
        entry["longrepr"] += "[%s] %s\n" % (report.when, report.longreprtext)
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["longrepr"] = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def pytest_sessionfinish(session):
    path = os.environ.get("GENTLE_LB_IPVS_RESULTS")
    if path:
        with open(path + ".tmp", "w") as handle:
            json.dump(RESULTS, handle, indent=1)
        os.replace(path + ".tmp", path)


# --------------------------------------------------------------------------
# The guest's own delay
# --------------------------------------------------------------------------

class StallProbe(object):
    """How late the guest wakes up from a 50 ms sleep, all session long: the
    part of a measured delay that was the lab's (a guest starved of CPU), not
    the module's.  A bound on "how promptly" adds the stall of its window."""

    def __init__(self):
        self.lags = []  # (monotonic time, seconds late)
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()

    def run(self):
        while True:
            before = time.monotonic()
            time.sleep(0.05)
            self.lags.append((before + 0.05, time.monotonic() - before - 0.05))

    def between(self, since, until):
        return sum(late for when, late in list(self.lags) if since <= when <= until)


STALLS = StallProbe() if os.environ.get("GENTLE_LB_IPVS_GUEST") == "1" else None


@pytest.fixture
def stall():
    """stall(since, until): seconds the guest was stalled between two monotonic times."""
    return STALLS.between


# --------------------------------------------------------------------------
# The director
# --------------------------------------------------------------------------

SAVE_SERVICE = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}


class Director(object):
    """The guest's IPVS table, through ipvsadm, plus module calls with this
    test's own state file."""

    def __init__(self, state_file):
        self.state_file = state_file

    @staticmethod
    def ipvsadm(*args, **kwargs):
        argv = ["ipvsadm"] + [str(a) for a in args]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
        if proc.returncode != 0:
            raise AssertionError("%s: rc %d: %s" % (" ".join(argv), proc.returncode, proc.stderr))
        return proc.stdout

    def restore(self, rules):
        """Build a table with one ipvsadm -R (one process: they are slow here),
        then check every line was applied (-R reports only the last line's rc)."""
        lines = [line.strip() for line in rules.strip().splitlines() if line.strip()]
        self.ipvsadm("-R", input="\n".join(lines) + "\n")
        wanted = sum(1 for line in lines if line.startswith("-a"))
        assert len(self.dests()) == wanted, self.ipvsadm("-Sn")

    def clear(self):
        self.ipvsadm("-C")

    def dests(self):
        """{(service, real server): {"fwd", "weight", "tunnel", "upper", "lower"}} where service is
        ipvsadm's own option text (``-t 10.0.0.100:80``, ``-f 7 -6``)."""
        table = {}
        for line in self.ipvsadm("-Sn").splitlines():
            words = line.split()
            if not words or words[0] != "-a":
                continue
            rs = words.index("-r")
            service = " ".join(words[1:rs])
            rest = words[rs + 2:]
            weight = int(rest[rest.index("-w") + 1])
            tunnel = " ".join(w for w in rest if w not in ("-g", "-m", "-i", "-w", str(weight)))
            table[(service, words[rs + 1])] = dict(fwd=rest[0], weight=weight, tunnel=tunnel)
        service = None
        for line in self.ipvsadm("-Ln", "--thresholds").splitlines():
            words = line.split()
            if not words or words[0] in ("IP", "Prot") or words[1:2] == ["RemoteAddress:Port"]:
                continue
            if words[0] == "FWM":
                service = "-f %s%s" % (words[1], " -6" if words[2:3] == ["IPv6"] else "")
            elif words[0] in SAVE_SERVICE:
                service = "%s %s" % (SAVE_SERVICE[words[0]], words[1])
            elif words[0] == "->":
                table[(service, words[1])].update(upper=int(words[2]), lower=int(words[3]),
                                                  active=int(words[4]), inactive=int(words[5]))
        return table

    def weights(self, address_part):
        return dict((k, v["weight"]) for k, v in self.dests().items() if address_part in k[1])

    def snapshot(self):
        return dict((k, dict((f, v[f]) for f in ("fwd", "weight", "tunnel", "upper", "lower")))
                    for k, v in self.dests().items())

    def member(self, args=None, check=False, diff=True, env=None, **kwargs):
        params = dict(args or {}, **kwargs)
        params.setdefault("state_file", self.state_file)
        params.setdefault("poll_interval", 0.2)
        return run_module("ipvs_member", params, check=check, diff=diff, env=env)

    @staticmethod
    def info(args=None, **kwargs):
        return run_module("ipvs_member_info", dict(args or {}, **kwargs))

    @staticmethod
    def warnings(result):
        """The warning texts of a module result (a raw module run returns
        structured WarningSummary records, the ansible command plain strings)."""
        texts = []
        for warning in result.get("warnings", []):
            if isinstance(warning, dict):
                warning = warning.get("event", {}).get("msg", str(warning))
            texts.append(warning)
        return texts

    def memory(self):
        if not os.path.exists(self.state_file):
            return {}
        with open(self.state_file) as handle:
            return dict((k, v["weight"]) for k, v in json.load(handle)["weights"].items())


@pytest.fixture
def director(tmp_path):
    ensure_collection_link()
    d = Director(str(tmp_path / "state" / "weights.json"))
    d.clear()
    yield d
    d.clear()


# --------------------------------------------------------------------------
# Real connections through the VIP (the netns lab)
# --------------------------------------------------------------------------

class Held(object):
    """N connections held open from the client namespace by lab/uml/holdconn.py."""

    def __init__(self, proc, ready, release, count):
        self.proc = proc
        self.ready = ready
        self.release_file = release
        self.count = count
        self.released_at = None

    def answers(self):
        return self.proc.stdout.read().split() if self.proc.poll() is not None else None

    def release(self):
        with open(self.release_file, "w") as handle:
            handle.write("go\n")
        self.released_at = time.monotonic()
        self.proc.wait(timeout=10)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


class NetnsLab(object):
    def __init__(self, director, tmp):
        self.director = director
        self.tmp = tmp
        self.held = []
        self.background = []

    def service(self, weights, port=80, scheduler="rr", udp=False):
        """A NAT virtual service on VIP:port with rsN (172.16.N.2) at the given weights."""
        flag = "-u" if udp else "-t"
        rules = ["-A %s %s:%d -s %s" % (flag, VIP, port, scheduler)]
        for index, weight in enumerate(weights, 1):
            rules.append("-a %s %s:%d -r 172.16.%d.2:%d -m -w %d" % (flag, VIP, port, index, port, weight))
        self.director.restore("\n".join(rules))
        return "%s:%s:%d" % ("udp" if udp else "tcp", VIP, port)

    def hold(self, count, port=80, vip=VIP):
        """Open ``count`` connections to vip:port and keep them until release()."""
        name = "held%d" % len(self.held)
        ready = os.path.join(self.tmp, name + ".ready")
        release = os.path.join(self.tmp, name + ".release")
        proc = subprocess.Popen(["ip", "netns", "exec", "client", SYSTEM_PYTHON, os.path.join(LAB, "holdconn.py"),
                                 "-n", str(count), "--ready", ready, "--until", release, "--hold", "120",
                                 vip, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        held = Held(proc, ready, release, count)
        self.held.append(held)
        deadline = time.monotonic() + 20
        while not os.path.exists(ready):
            if proc.poll() is not None:
                raise AssertionError("holdconn failed: %s" % proc.stderr.read())
            if time.monotonic() > deadline:
                raise AssertionError("holdconn did not connect within 20 s")
            time.sleep(0.05)
        return held

    @staticmethod
    def ask(port=80, vip=VIP, count=1):
        """New requests through the VIP, one connection each, all from the client
        namespace's one address: the names of the real servers that answered
        (a string for one request, a list for several)."""
        code = ("import socket\nfor _ in range(%d):\n"
                "    s = socket.create_connection(('%s', %d), timeout=5)\n"
                "    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); data = b''\n"
                "    while True:\n        chunk = s.recv(4096)\n        if not chunk: break\n        data += chunk\n"
                "    s.close()\n"
                "    print(data.split(b'\\r\\n\\r\\n', 1)[1].decode().strip())" % (count, vip, port))
        proc = subprocess.run(["ip", "netns", "exec", "client", SYSTEM_PYTHON, "-c", code], capture_output=True,
                              text=True, timeout=30, check=False)
        assert proc.returncode == 0, proc.stderr
        answers = proc.stdout.split()
        return answers[0] if count == 1 else answers

    def in_background(self, function, *args, **kwargs):
        """Run function in a thread; returns a record with .done (event), .result, .finished_at."""
        record = Background()

        def target():
            try:
                record.result = function(*args, **kwargs)
            finally:
                record.finished_at = time.monotonic()
                record.done.set()
        thread = threading.Thread(target=target, daemon=True)
        record.thread = thread
        self.background.append(record)
        thread.start()
        return record

    def close(self):
        for held in self.held:
            if held.proc.poll() is None:
                try:
                    held.release()
                except Exception:  # pylint: disable=broad-except
                    held.kill()
        for record in self.background:
            record.done.wait(120)


class Background(object):
    def __init__(self):
        self.done = threading.Event()
        self.result = None
        self.finished_at = None
        self.thread = None


@pytest.fixture
def lab(director, tmp_path):
    if not os.path.exists("/run/netns/client"):
        pytest.fail("the netns lab is not up (lab/uml/run --netns-lab)")
    the_lab = NetnsLab(director, str(tmp_path))
    yield the_lab
    the_lab.close()


@pytest.fixture
def fake_process(tmp_path):
    """Start a process with a chosen name (a copy of sleep), stopped at teardown."""
    procs = []

    def start(name):
        exe = str(tmp_path / name)
        shutil.copy("/bin/sleep", exe)
        proc = subprocess.Popen([exe, "300"])
        procs.append(proc)
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
