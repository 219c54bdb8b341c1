# -*- coding: utf-8 -*-
"""Fixtures for the rolling_deploy role's integration tests.

Every test gets its own lab (lab/rolling_lab.py): a real HAProxy with four app
instances (separate processes, deployed through lab/app/ctl.py as the
playbook's deploy tasks do), a load generator and an in-rotation sampler, all
on 127.0.0.1, all torn down by the fixture's finalizer.

The two long scenarios - the IPVS one in a user-mode Linux guest and the
molecule scenario, each minutes of mostly waiting - are started as soon as
collection shows a test needs them, so they run while the HAProxy tests run
(they share nothing with them: their own labs, sockets and lock files); their
tests then wait for them (``background`` fixture).
"""

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(HERE))

from helpers import ansible_env, chromium_dump_dom, run_playbook  # noqa: E402
from lab.rolling_lab import RollingLab  # noqa: E402

PLAYBOOK = os.path.join(REPO, "playbooks", "rolling_deploy.yml")
MEMBER_PLAYBOOK = os.path.join(REPO, "playbooks", "member.yml")
NAIVE_PLAYBOOK = os.path.join(REPO, "lab", "demo", "naive.yml")
ROLLBACK_TASKS = os.path.join(REPO, "lab", "demo", "rollback.yml")
FILES = os.path.join(HERE, "files")

# Longer than HAProxy's three connection retries (1 s apart): what a real
# release takes to unpack and start, and what makes an undrained restart fail.
INSTALL_SECONDS = 3.5


@pytest.fixture
def make_lab(request):
    """make_lab(**kwargs) -> a started RollingLab, stopped at teardown."""
    labs = []

    def make(**kwargs):
        lab = RollingLab(**kwargs)
        labs.append(lab)
        return lab.start()

    def stop_all():
        for lab in labs:
            lab.stop()

    request.addfinalizer(stop_all)
    return make


@pytest.fixture
def lab(make_lab):
    return make_lab(instances=4)


class Run(object):
    """An ansible-playbook run: rc, output, and what the role published."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr

    @property
    def stats(self):
        """The set_stats artifacts (ANSIBLE_SHOW_CUSTOM_STATS), {} if none."""
        match = re.search(r"^\tRUN: (.*)$", self.output, re.M)
        return json.loads(match.group(1)) if match else {}

    @property
    def timings(self):
        return self.stats.get("rolling_deploy_play_timings", {})

    @property
    def timeline(self):
        """The play-wide timeline artifact: every host's phases, by start."""
        return self.stats.get("rolling_deploy_play_timeline", [])

    def __repr__(self):
        return "Run(rc=%s)\n%s" % (self.rc, self.output[-int(os.environ.get("GENTLE_LB_RUN_TAIL", 6000)):])


def playbook(lab, path=PLAYBOOK, extra_vars=None, timeout=300, args=(), env=None):
    """Run a playbook against the lab's inventory."""
    started = time.time()
    proc = run_playbook(path, extra_vars=extra_vars, inventory=lab.inventory, timeout=timeout,
                        env=dict(env or {}, ANSIBLE_SHOW_CUSTOM_STATS="1"), args=args)
    run = Run(proc)
    run.window = (started, time.time())
    return run


# The order a host's phases happen in (docs/rolling_deploy.md, "Timings").
PHASES = ["before_drain", "drain", "wait", "deploy", "health", "restore", "restore_wait", "soak", "after_restore",
          "failure_restore", "rollback_drain", "rollback", "rollback_health", "rollback_restore"]
CALL_PHASES = {"drain", "wait", "restore", "restore_wait", "failure_restore", "rollback_drain", "rollback_restore"}


def check_timeline(run, batches, rounds=None, bindings=1):
    """The published timeline, checked against the run: {host: its phases}.

    Sorted by start; per host its phases in their order, never overlapping,
    inside the run's wall clock; ``batches`` ({host: batch}) and ``rounds``
    as the play's serial and the capacity floor made them, a batch over
    before the next one starts; every balancer call phase with one entry per
    binding (``bindings`` per host), each inside its phase."""
    entries = run.timeline
    assert entries, run
    assert entries == sorted(entries, key=lambda e: (e["started"], e["ended"], e["host"])), entries
    low, high = run.window
    by_host = {}
    for entry in entries:
        by_host.setdefault(entry["host"], []).append(entry)
        assert low <= entry["started"] <= entry["ended"] <= high, (run.window, entry)
        assert entry["started_iso"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(entry["started"])) + \
            ".%03dZ" % (round(entry["started"] * 1000) % 1000), entry
        assert entry["batch"] == batches[entry["host"]], entry
        if rounds is not None:
            assert entry["round"] == rounds[entry["host"]], entry
        if entry["phase"] in CALL_PHASES:
            assert len(entry["bindings"]) == bindings, entry
            for binding in entry["bindings"]:
                assert entry["started"] <= binding["started"] <= binding["ended"] <= entry["ended"], entry
                assert binding["type"] and binding["label"] and binding["result"] in ("ok", "failed"), binding
    assert sorted(by_host) == sorted(batches), sorted(by_host)
    for host, phases in by_host.items():
        order = [PHASES.index(p["phase"]) for p in phases]
        assert order == sorted(set(order)), (host, [p["phase"] for p in phases])
        for before, after in zip(phases, phases[1:]):
            assert before["ended"] <= after["started"], (host, before, after)
    for number in sorted(set(batches.values()))[1:]:
        assert max(e["ended"] for e in entries if e["batch"] == number - 1) <= \
            min(e["started"] for e in entries if e["batch"] == number), number
    return by_host


def render_report(path, workdir):
    """What headless Chromium shows of the rolling_deploy_report at ``path``:
    files/report_probe.js, run in a copy of it after layout, reads every lane
    with its bars, markers, failure lines and counters (screen boxes,
    computed colours, visible text).  Returns (seconds Chromium took, probe)."""
    with open(path) as handle:
        page = handle.read()
    assert "<script" not in page, "the report has a script of its own"
    with open(os.path.join(FILES, "report_probe.js")) as handle:
        probe = handle.read()
    copy = os.path.join(str(workdir), "probed.html")
    with open(copy, "w") as handle:
        handle.write(page.replace("</body>", "<script>%s</script></body>" % probe))
    started = time.monotonic()
    dom = chromium_dump_dom("file://" + copy, os.path.join(str(workdir), "chromium-profile"),
                            args=["--window-size=1400,900"])
    elapsed = time.monotonic() - started
    found = re.search(r'<pre id="report-probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return elapsed, json.loads(html.unescape(found.group(1)))


def admin_states(lab):
    """{server: admin state} from HAProxy: READY, DRAIN or MAINT."""
    result = {}
    for row in lab.haproxy.servers_state("app"):
        admin = int(row["srv_admin_state"])
        # SRV_ADMF_*: F/I/C/R/H-MAINT = 0x01 0x02 0x04 0x20 0x40, F/I-DRAIN = 0x08 0x10.
        result[row["srv_name"]] = "MAINT" if admin & 0x67 else ("DRAIN" if admin & 0x18 else "READY")
    return result


def assert_no_failures(summary):
    assert summary["sent"] > 200, summary["line"]
    assert summary["failed"] == 0, "%s\n%s" % (summary["line"], summary["failure_samples"])


# --------------------------------------------------------------------------
# The long scenarios, run in the background


class Background(object):
    """A scenario run as a subprocess from collection time on; ``result()``
    waits for it and returns (returncode, output, workdir).  ``{workdir}`` in
    the arguments and the environment is its own temporary directory."""

    def __init__(self, name, argv, cwd, env=None, timeout=900):
        self.name = name
        # Short: HAProxy's unix sockets (molecule's lab) live there.
        self.workdir = tempfile.mkdtemp(prefix="rl-%s-" % name)
        os.chmod(self.workdir, 0o755)
        self.log = os.path.join(self.workdir, "output.log")
        self.timeout = timeout
        self.started = time.monotonic()
        argv = [a.replace("{workdir}", self.workdir) for a in argv]
        env = dict((k, v.replace("{workdir}", self.workdir)) for k, v in (env or os.environ).items())
        with open(self.log, "w") as handle:
            self.proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=cwd, env=env)

    def result(self):
        try:
            self.proc.wait(timeout=max(self.timeout - (time.monotonic() - self.started), 1))
        except subprocess.TimeoutExpired:
            self.stop()
        with open(self.log) as handle:
            return self.proc.returncode, handle.read(), self.workdir

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()       # lab/uml/run kills its guest on SIGTERM
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


BACKGROUND = {}
IPVS_COUNT = 2       # two real servers: every Ansible task costs about a second in the user-mode kernel


def _scenarios():
    """name -> (the test file that needs it, argv, cwd, env)."""
    found = {}
    if shutil.which("linux.uml", path=os.environ.get("PATH", "") + ":/usr/bin"):
        found["ipvs"] = ("test_ipvs.py", [
            sys.executable, os.path.join(REPO, "lab", "uml", "run"), "--netns-lab", "--agent", "--timeout", "900",
            "--env", "LAB_RS_COUNT=%d" % IPVS_COUNT, "--", os.path.join(REPO, ".venv", "bin", "python"),
            os.path.join(HERE, "ipvs_scenario.py"), "{workdir}"], REPO, None)
    # Molecule keeps its state, and the lab its files, in the work directory.
    found["molecule"] = ("test_molecule.py", [os.path.join(REPO, ".venv", "bin", "molecule"), "test"],
                         os.path.join(REPO, "roles", "rolling_deploy"),
                         ansible_env({"NO_COLOR": "1", "MOLECULE_EPHEMERAL_DIRECTORY": "{workdir}/m"}))
    return found


def pytest_collection_finish(session):
    wanted = set(item.path.name for item in session.items)
    for name, (test_file, argv, cwd, env) in _scenarios().items():
        if test_file in wanted:
            BACKGROUND[name] = Background(name, argv, cwd, env=env, timeout=960)


def pytest_sessionfinish(session, exitstatus):
    for background in BACKGROUND.values():
        background.stop()
        shutil.rmtree(background.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def background():
    """background(name) -> (returncode, output, workdir) of a scenario started at collection."""
    def wait(name):
        if name not in BACKGROUND:
            pytest.fail("the %s scenario cannot run here: linux.uml is not installed (Debian's user-mode-linux "
                        "and ipvsadm packages; make setup installs them)" % name)
        return BACKGROUND[name].result()
    return wait
