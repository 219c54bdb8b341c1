# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot the user-mode Linux guest once and run the in-guest suite (guest/)
there; report each in-guest test as one host test.

The guest runs ``<venv python> -m pytest guest/`` with the netns lab up
(client, director, rs1..rs3; see lab/uml/README.md).  guest/conftest.py
writes every test's outcome to a JSON file on the host file system (the guest's
root is the host's "/"); the host tests below read it.
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
GUEST_TIMEOUT = 900


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


@pytest.fixture(scope="module")
def guest_results():
    """One boot, the whole in-guest suite: {nodeid: {outcome, longrepr, duration}}."""
    for tool in ("linux.uml", "ipvsadm"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            pytest.fail("%s is not installed: the IPVS tests need Debian's user-mode-linux and ipvsadm "
                        "packages (make setup installs them)" % tool)
    work = tempfile.mkdtemp(prefix="gentle-lb-ipvs-")
    os.chmod(work, 0o755)
    results_file = os.path.join(work, "results.json")
    log = os.path.join(work, "guest.log")
    cmd = [sys.executable, RUN, "--netns-lab", "--timeout", str(GUEST_TIMEOUT),
           "--env", "GENTLE_LB_IPVS_RESULTS=" + results_file,
           "--env", "GENTLE_LB_IPVS_GUEST=1",
           "--env", "PYTHONPATH=" + COLLECTIONS,
           "--env", "LAB_RS_COUNT=3",
           "--env", "LAB_PORTS=80 81 82 83 84 85 86 87 88 89 90",
           "--",
           VENV_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "console_output_style=classic",
           "--basetemp", os.path.join(work, "tmp"), GUEST_DIR]
    started = time.monotonic()
    with open(log, "w") as handle:
        proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=guest_env(), cwd=os.getcwd(),
                              timeout=GUEST_TIMEOUT + 60, check=False)
    elapsed = time.monotonic() - started
    with open(log) as handle:
        output = handle.read()
    sys.stderr.write("\n[ipvs] guest suite: exit status %d after %.1fs (boot included)\n" % (proc.returncode, elapsed))
    try:
        with open(results_file) as handle:
            results = json.load(handle)
    except (IOError, ValueError):
        results = {}
    slowest = sorted(results.items(), key=lambda item: -item[1]["duration"])[:5]
    sys.stderr.write("[ipvs] slowest in the guest: %s\n" % ", ".join(
        "%s %.1fs" % (name.split("::")[-1], entry["duration"]) for name, entry in slowest))
    yield dict(results=results, output=output, rc=proc.returncode, elapsed=elapsed)
    shutil.rmtree(work, ignore_errors=True)


def test_in_guest(guest_results, guest_test):
    if guest_test.startswith("COLLECTION-FAILED"):
        pytest.fail("the in-guest suite could not be collected on the host:\n" + guest_test)
    found = guest_results["results"].get(guest_test)
    if found is None:
        pytest.fail("%s did not run in the guest (guest exit status %d); guest output:\n%s"
                    % (guest_test, guest_results["rc"], guest_results["output"][-6000:]))
    if found["outcome"] == "skipped":
        pytest.skip(found["longrepr"] or "skipped in the guest")
    if found["outcome"] != "passed":
        pytest.fail("in the guest (%.1fs):\n%s" % (found["duration"], found["longrepr"]), pytrace=False)


def test_guest_suite_exit_status(guest_results):
    """Nothing failed outside the tests themselves (fixtures, teardown, the harness)."""
    assert guest_results["rc"] == 0, guest_results["output"][-6000:]
