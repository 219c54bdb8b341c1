# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot the user-mode Linux guests of the keepalived tests early.

Each part of guest.py ("checks", "rolling") runs in its own guest, and both
guests are started as soon as collection shows that a test needs them, so
they boot and run while the host-side tests (test_lvs_director_render.py)
run; the `guests` fixture then waits for them.  The guests run with
lab/uml/run --agent: guest.py's ansible-playbook runs are controllers on the
host (lab/uml/on-host) whose tasks run in the guest.  Their results (results.json
plus the ansible-playbook logs) are kept in a temporary directory that is
removed when every test passed (unless GENTLE_LB_KEEP is set) and named in
the report otherwise.
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
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import guest  # noqa: E402
from helpers import run_playbook  # noqa: E402
RUN = os.path.join(REPO, "lab", "uml", "run")
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
UML_TESTS = "test_lvs_director_uml.py"
# A backstop, not a budget: each stage of a part has its own budget (guest.py),
# and a failure names the stage that ran long.  A part takes 1-3 minutes.
GUEST_TIMEOUT = 900
PARTS = ("checks", "rolling")


def missing():
    """Why the guests cannot run here, or None."""
    sbin = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    if shutil.which("linux.uml") is None and not os.access("/usr/bin/linux.uml", os.X_OK):
        return "linux.uml not installed (Debian package user-mode-linux): no IPVS kernel to test in"
    for tool, package in (("keepalived", "keepalived"), ("ipvsadm", "ipvsadm"), ("openssl", "openssl")):
        if shutil.which(tool, path=sbin) is None:
            return "%s not installed (Debian package %s)" % (tool, package)
    if not os.access(PYTHON, os.X_OK):
        return "%s missing (make setup)" % PYTHON
    if not os.path.exists(os.path.join(REPO, "plugins", "modules", "ipvs_member_info.py")):
        return "gentle.lb.ipvs_member_info is not in the collection yet (the drain/restore and verify tasks use it)"
    return None


class Guests(object):
    """The two guests: started once, waited for once."""

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="lvs-director-uml-")
        self.procs = {}
        self.started = None
        self.finished = {}
        self.returncodes = {}
        self.keep = True
        self.error = None

    def start(self):
        cert, key = os.path.join(self.workdir, "cert.pem"), os.path.join(self.workdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=www.example.test", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        env = dict(os.environ, LAB_PORTS="7", LAB_CLIENTS="2")
        self.started = time.monotonic()
        for part in PARTS:
            out = os.path.join(self.workdir, part)
            os.mkdir(out)
            argv = [RUN, "--netns-lab", "--agent", "--timeout", str(GUEST_TIMEOUT), "--",
                    PYTHON, os.path.join(HERE, "guest.py"), part, "--out", out, "--cert", cert, "--key", key]
            if part == "rolling":
                argv += ["--config", self.render_rolling_config(out)]
            with open(os.path.join(out, "uml.log"), "w") as log:
                self.procs[part] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL, cwd=REPO, env=env)

    def render_rolling_config(self, out):
        """keepalived.conf of the rolling part, by the role on the host (a few
        seconds here, a minute in the guest): no notify script (it would have
        to live in a root-only directory of the guest), nothing reloaded."""
        data = guest.lab_vars("rolling")
        playbook = os.path.join(out, "render.yml")
        with open(playbook, "w") as handle:
            handle.write("- name: Render\n  hosts: localhost\n  gather_facts: false\n"
                         "  roles:\n    - role: gentle.lb.lvs_director\n")
        config = os.path.join(out, "keepalived.conf")
        proc = run_playbook(playbook, {
            "lvs_director_real_servers": data["lab_real_servers"],
            "lvs_director_virtual_servers": data["lab_virtual_servers"],
            "lvs_director_install": False,
            "lvs_director_verify": False,
            "lvs_director_notify": False,
            "lvs_director_reload_method": "none",
            "lvs_director_config_path": config,
            "lvs_director_maintenance_dir": os.path.join(out, "maint"),
            "lvs_director_maintenance_delay_loop": data["lvs_director_maintenance_delay_loop"],
            "lvs_director_maintenance_timeout": data["lvs_director_maintenance_timeout"],
            "lvs_director_router_id": "uml-lab",
        }, args=("-c", "local"))
        with open(os.path.join(out, "render.log"), "w") as handle:
            handle.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError("the role could not render the rolling part's keepalived.conf:\n" + proc.stdout)
        return config

    def wait(self):
        for part, proc in self.procs.items():
            if part not in self.finished:
                self.returncodes[part] = proc.wait(timeout=GUEST_TIMEOUT + 60)
                self.finished[part] = round(time.monotonic() - self.started, 1)
        return self

    def results(self, part):
        """The part's results.json, or None when the guest wrote none."""
        try:
            with open(os.path.join(self.workdir, part, "results.json")) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def failure(self, part, data):
        """Why a part did not complete: how the guest ended, the stage it was
        in and for how long, every stage against its budget, the error."""
        out = os.path.join(self.workdir, part)
        rc = self.returncodes.get(part)
        ended = {124: "lab/uml/run killed the guest at its %d s timeout" % GUEST_TIMEOUT,
                 125: "the guest failed before guest.py reported a status (boot or setup; see uml.log)",
                 0: "guest.py exited 0"}.get(rc, "guest.py exited %s" % rc)
        lines = ["guest %s did not complete (%s, %s s after the guests started); its files: %s"
                 % (part, ended, self.finished.get(part), out)]
        if data is None:
            lines.append("it wrote no results.json")
        else:
            calibration = data.get("calibration") or {}
            if calibration:
                lines.append("guest speed factor %(factor)s (a Python start took %(python_start)s s, "
                             "%(quiet_python_start)s s on a quiet host): budgets below are scaled by it" % calibration)
            try:
                with open(os.path.join(out, "progress.json")) as handle:
                    progress = json.load(handle)
            except (OSError, ValueError):
                progress = {}
            stages = list(data.get("stages", []))
            current = data.get("current_stage")
            if current and "now" in progress:
                stages.append(dict(current, seconds=progress["now"] - current["started"],
                                   stall=progress.get("stall", 0), running=True))
            for stage in stages:
                budget = stage["budget"] + stage.get("stall", 0)
                over = stage["seconds"] / budget if budget else 0
                lines.append("  stage %-50s %s %7.1f s of its %6.1f s budget (%.1f s of it the guest's stall)%s" % (
                    repr(stage["name"]), "still running:" if stage.get("running") else "ran          ",
                    stage["seconds"], budget, stage.get("stall", 0), "  <- %.1fx over" % over if over > 1 else ""))
            if current and "now" not in progress:
                lines.append("  stage %r was running (no progress file: how long is unknown)" % current["name"])
            for key, text in sorted((data.get("missed") or {}).items()):
                lines.append("  missed %s: %s" % (key, text))
            if data.get("error"):
                lines.append("error in the guest:\n" + data["error"].rstrip())
        for name in ("uml.log", "run1.log", "run2.log", "run3.log"):
            path = os.path.join(out, name)
            if os.path.exists(path):
                with open(path, errors="replace") as handle:
                    tail = handle.read()[-1500:]
                lines.append("---- %s (tail) ----\n%s" % (name, tail.rstrip()))
        return "\n".join(lines)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()  # lab/uml/run kills its guest on SIGTERM
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


GUESTS = {}


def pytest_collection_finish(session):
    if missing() is None and any(item.path.name == UML_TESTS for item in session.items):
        GUESTS["guests"] = Guests()
        try:
            GUESTS["guests"].start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            GUESTS["guests"].error = str(exc)


def pytest_terminal_summary(terminalreporter):
    """One line of measured numbers (docs/lvs_director.md quotes them)."""
    guests = GUESTS.get("guests")
    if guests is None or not guests.finished:
        return
    data = {part: guests.results(part) for part in PARTS}
    if None in data.values():
        return
    checks, rolling = data["checks"], data["rolling"]
    loads = rolling.get("load", {})
    terminalreporter.write_line(
        "lvs_director measured: hung page out %s s, back %s s; sorry server in %s s, out %s s; "
        "maintenance file out %s s, back %s s; drain with requests in flight %s s; "
        "rolling deploy %s failed of %s requests; guests %s s (speed factor %s, stalled %s s)" % (
            "/".join(str(v) for v in sorted(checks.get("hang_out_seconds", {}).values())),
            checks.get("recover_seconds"), checks.get("sorry_in_seconds"), checks.get("sorry_out_seconds"),
            checks.get("maint_file_out_seconds"), checks.get("maint_file_back_seconds"),
            (checks.get("run2", {}).get("results") or [{}])[0].get("waited"),
            sum(v.get("failed", 0) for v in loads.values()), sum(v.get("sent", 0) for v in loads.values()),
            "/".join("%s %s" % (p, guests.finished.get(p)) for p in PARTS),
            "/".join(str((data[p].get("calibration") or {}).get("factor")) for p in PARTS),
            "/".join(str(data[p].get("stall_total")) for p in PARTS)))


def pytest_sessionfinish(session, exitstatus):
    guests = GUESTS.get("guests")
    if guests is not None:
        guests.stop()
        guests.keep = exitstatus != 0 or bool(os.environ.get("GENTLE_LB_KEEP"))


def pytest_unconfigure(config):
    """After the terminal summary (which reads the results): clean up."""
    guests = GUESTS.pop("guests", None)
    if guests is None:
        return
    if guests.keep:
        print("lvs_director: guest results and logs kept in %s" % guests.workdir)
    else:
        shutil.rmtree(guests.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def guests():
    reason = missing()
    if reason:
        pytest.skip(reason)
    if GUESTS["guests"].error:
        pytest.fail(GUESTS["guests"].error)
    return GUESTS["guests"].wait()
