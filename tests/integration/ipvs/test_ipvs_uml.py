# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the in-guest suite (guest/) in user-mode Linux guests; report each
in-guest test as one host test.

The suite is split into GROUPS, one guest each, started together as soon as
collection is done (conftest.py), so they run side by side and while the
other host tests (tests/lab) run.  Each guest runs ``<venv python> -m pytest``
on its files with the netns lab up (client, director, rs1..rs3; see
lab/uml/README.md) and the agent (the ad-hoc test's controller runs on the
host).  guest/conftest.py writes every test's outcome to a JSON file on the
host file system (the guest's root is the host's "/"); the tests below read it.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_DIR = os.path.join(HERE, "guest")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
RUN = os.path.join(REPO, "lab", "uml", "run")
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
GUEST_TIMEOUT = 900  # a backstop: a group takes 1-2 minutes
# Two guests for two cores; the split keeps their times close (measure with make integration-ipvs).
GROUPS = {
    "states-promises": ["test_ipvs_guest_states.py", "test_ipvs_guest_promises.py"],
    "live-errors-adhoc-persistence-keepalived": ["test_ipvs_guest_live.py", "test_ipvs_guest_errors.py",
                                                 "test_ipvs_guest_adhoc.py", "test_ipvs_guest_persistence.py",
                                                 "test_ipvs_guest_keepalived.py"],
}


def guest_env():
    env = dict(os.environ)
    env["GENTLE_LB_IPVS_GUEST"] = "1"
    env["PYTHONPATH"] = COLLECTIONS
    return env


def guest_test_ids():
    """The in-guest tests, collected on the host (collection only imports)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           GUEST_DIR], capture_output=True, text=True, env=guest_env(), cwd=os.getcwd(),
                          check=False)
    ids = [line.strip() for line in proc.stdout.splitlines() if "::" in line]
    if proc.returncode != 0 or not ids:
        return ["COLLECTION-FAILED: " + (proc.stdout + proc.stderr)[-2000:]]
    return ids


def pytest_generate_tests(metafunc):
    if "guest_test" in metafunc.fixturenames:
        ids = guest_test_ids()
        metafunc.parametrize("guest_test", ids, ids=[i.split("::", 1)[-1] for i in ids])


class GuestSuite(object):
    """One guest per group, started at once; their results merged."""

    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="gentle-lb-ipvs-")
        os.chmod(self.work, 0o755)
        self.procs = {}
        self.started = None
        self.ended = {}
        self.error = None
        self.summary = None

    def start(self):
        for tool in ("linux.uml", "ipvsadm"):
            if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
                self.error = ("%s is not installed: the IPVS tests need Debian's user-mode-linux and ipvsadm "
                              "packages (make setup installs them)" % tool)
                return
        self.started = time.time()
        for name, files in GROUPS.items():
            cmd = [sys.executable, RUN, "--netns-lab", "--agent", "--timeout", str(GUEST_TIMEOUT),
                   "--env", "GENTLE_LB_IPVS_RESULTS=" + self.path(name, "results.json"),
                   "--env", "GENTLE_LB_IPVS_GUEST=1",
                   "--env", "PYTHONPATH=" + COLLECTIONS,
                   "--env", "LAB_RS_COUNT=3",
                   "--env", "LAB_PORTS=80 81 82 83 84 85 86 87 88 89 90",
                   "--",
                   VENV_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
                   "console_output_style=classic", "--basetemp", self.path(name, "tmp")]
            cmd += [os.path.join(GUEST_DIR, f) for f in files]
            with open(self.path(name, "guest.log"), "w") as log:
                self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=guest_env(),
                                                    cwd=os.getcwd(), stdin=subprocess.DEVNULL)

    def path(self, group, name):
        return os.path.join(self.work, "%s.%s" % (group, name))

    def wait(self):
        """{nodeid: {outcome, longrepr, duration, group}}, and per group (rc, seconds, output)."""
        if self.error:
            pytest.fail(self.error)
        results, groups = {}, {}
        for name, proc in self.procs.items():
            try:
                rc = proc.wait(timeout=GUEST_TIMEOUT + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            # The guest's log was last written when it ended (we may wait for it later).
            self.ended.setdefault(name, os.path.getmtime(self.path(name, "guest.log")) - self.started)
            with open(self.path(name, "guest.log")) as handle:
                output = handle.read()
            try:
                with open(self.path(name, "results.json")) as handle:
                    for nodeid, entry in json.load(handle).items():
                        results[nodeid] = dict(entry, group=name)
            except (IOError, ValueError):
                pass
            groups[name] = dict(rc=rc, seconds=self.ended[name], output=output)
        return results, groups

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()  # lab/uml/run kills its guest on SIGTERM
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


def describe(groups):
    return "; ".join("guest %s: exit status %s after %.0f s" % (name, g["rc"], g["seconds"])
                     for name, g in sorted(groups.items()))


@pytest.fixture(scope="module")
def guest_results(request):
    suite = request.config.stash.get(GUEST_SUITE_KEY, None)
    if suite is None:  # collected without the conftest's early start (a single test id given)
        suite = GuestSuite()
        suite.start()
    results, groups = suite.wait()
    slowest = sorted(results.items(), key=lambda item: -item[1]["duration"])[:3]
    suite.summary = "ipvs guests: %s; slowest in them: %s" % (describe(groups), ", ".join(
        "%s %.1f s" % (name.split("::")[-1], entry["duration"]) for name, entry in slowest))
    yield dict(results=results, groups=groups)
    suite.stop()


def test_in_guest(guest_results, guest_test):
    if guest_test.startswith("COLLECTION-FAILED"):
        pytest.fail("the in-guest suite could not be collected on the host:\n" + guest_test)
    found = guest_results["results"].get(guest_test)
    if found is None:
        group = next((name for name, files in GROUPS.items()
                      if any("/" + f + "::" in "/" + guest_test for f in files)), None)
        g = guest_results["groups"].get(group, {})
        pytest.fail("%s did not run in the guest (%s); guest %s output:\n%s"
                    % (guest_test, describe(guest_results["groups"]), group, g.get("output", "")[-6000:]))
    if found["outcome"] == "skipped":
        pytest.skip(found["longrepr"] or "skipped in the guest")
    if found["outcome"] != "passed":
        pytest.fail("in guest %s (%.1fs):\n%s" % (found["group"], found["duration"], found["longrepr"]),
                    pytrace=False)


def test_guest_suite_exit_status(guest_results):
    """Nothing failed outside the tests themselves (fixtures, teardown, the harness)."""
    bad = dict((name, g) for name, g in guest_results["groups"].items() if g["rc"] != 0)
    assert not bad, describe(guest_results["groups"]) + "\n" + "\n".join(
        "---- %s ----\n%s" % (name, g["output"][-4000:]) for name, g in bad.items())


GUEST_SUITE_KEY = pytest.StashKey()
