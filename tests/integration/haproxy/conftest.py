# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for haproxy_member / haproxy_member_info against a real HAProxy.

Tests run on every HAProxy line (``version`` is 2.6 = Debian bookworm's
/usr/sbin/haproxy, 3.0 = trixie's and 3.2 = forky's build, each started
through its own loader; see lab/haproxy_lab.py), except those marked
``one_version`` (see ONE_VERSION).  One lab per version is started for the
session and put back into its initial state before each test (``lab``); tests
that break the lab (killing HAProxy, changing socket permissions) get their
own (``fresh_lab``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from helpers import ensure_collection_link, run_module  # noqa: E402
from lab.haproxy_lab import DEFAULT_BACKENDS, HAProxyLab, wait_until  # noqa: E402

VERSIONS = ("2.6", "3.0", "3.2")

# Which tests run on every line, and which on one.  Every line: whatever
# HAProxy itself decides and that has differed, or may differ, between lines:
# admin and check states after each command, sessions and waits, replies to
# writes and their framing, show stat / show servers state / stats page
# columns, error and permission replies.  One line (marked one_version): what
# the module decides before or without HAProxy's answer: argument and name
# validation, selection and capacity arithmetic over states already read,
# connection errors, diff/check-mode output, environment fallbacks and the
# ansible/ansible-playbook plumbing.  Each line's parsers are also covered by
# the unit tests over its captured replies.  This keeps the suite near its
# two-line run time with a third line added.  2.6 is the one line: the
# system's own package, and the line with the most quirks (reply framing).
ONE_VERSION = "2.6"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "one_version: run on HAProxy %s only (module-side logic; see conftest)" % ONE_VERSION)


def pytest_generate_tests(metafunc):
    """One session lab per version: every version, or ONE_VERSION for tests
    marked one_version."""
    if "session_lab" in metafunc.fixturenames:
        one = metafunc.definition.get_closest_marker("one_version") is not None
        metafunc.parametrize("session_lab", [ONE_VERSION] if one else list(VERSIONS),
                             indirect=True, scope="session")


# The default lab (app: web1 web2 web3 shared1 nocheck1; api: shared1 api1),
# plus a backend with a static algorithm (no dynamic servers, weights 0%/100%
# only) and a server that tracks app/web2.
BACKENDS = dict(
    DEFAULT_BACKENDS,
    static={"balance": "source", "servers": ["s1 check", "s2 check"]},
    tracking={"servers": [{"name": "trk1", "options": "track app/web2", "app": "web2"}]},
)


class Lab(object):
    """HAProxyLab plus what the tests need: reset, state snapshots, held
    requests that are always released, module arguments per transport."""

    def __init__(self, version, backends=None):
        self.hap = HAProxyLab(version=version, backends=backends or BACKENDS)
        self.version = version
        self.held = []

    def __getattr__(self, name):
        return getattr(self.hap, name)

    def start(self):
        self.hap.start()
        self.hap.wait_servers_up()
        self.initial = self.admin_states()
        return self

    def stop(self):
        self.release_all()
        self.hap.stop()

    # --- connection arguments per transport

    def conn(self, transport="unix"):
        if transport == "unix":
            return dict(socket=self.hap.admin_socket)
        if transport == "tcp":
            return dict(socket=self.hap.tcp_socket)
        if transport == "stats":
            return dict(stats_url=self.hap.stats_url, stats_user=self.hap.stats_user,
                        stats_password=self.hap.stats_password)
        raise ValueError(transport)

    # --- observing

    def admin_states(self):
        """{(backend, server): (admin_state, uweight)} from show servers state."""
        return dict(((r["be_name"], r["srv_name"]), (int(r["srv_admin_state"]), int(r["srv_uweight"])))
                    for r in self.hap.servers_state())

    def admin(self, backend, server):
        return self.admin_states()[(backend, server)][0]

    def info(self, **args):
        """haproxy_member_info's view: {(backend, server): entry}."""
        args.setdefault("socket", self.hap.admin_socket)
        result = run_module("haproxy_member_info", args)
        assert not result.failed, result
        return dict(((m["container"], m["name"]), m) for m in result["members"])

    def scur(self, backend, server):
        return int(self.hap.server_stat(backend, server)["scur"])

    # --- traffic

    def hold(self, server, backend=None, seconds=60):
        held = self.hap.hold(server, seconds=seconds, backend=backend)
        self.held.append(held)
        wait_until(lambda: self.scur(backend or "app", server) >= 1, timeout=5,
                   what="scur of %s/%s" % (backend or "app", server))
        return held

    def release_all(self):
        for held in self.held:
            held.release()
        for held in self.held:
            held.wait(5)
        self.held = []

    # --- reset

    def reset(self):
        """Back to the state right after start: every held request ended, apps
        healthy, runtime-added servers deleted, forced bits cleared, weights
        restored, every checked server UP."""
        self.release_all()
        for app in self.hap.apps.values():
            app.release_all()
            app.set_healthy(True)
            app.error_every = 0
            if not app.running:
                app.start()
        known = set(self.initial)
        for row in self.hap.servers_state():
            key = (row["be_name"], row["srv_name"])
            name = "%s/%s" % key
            if key not in known:
                self.hap.send("set server %s state maint" % name)
                wait_until(lambda: "deleted" in self.hap.send("del server %s" % name), timeout=10,
                           what="del server %s" % name)
                continue
            if int(row["srv_admin_state"]) & 0x09:
                self.hap.send("set server %s state ready" % name)
            if int(row["srv_uweight"]) != self.initial[key][1]:
                self.hap.send("set weight %s %d" % (name, self.initial[key][1]))
        wait_until(lambda: self.admin_states() == self.initial, timeout=5, what="admin states reset")
        self.hap.wait_servers_up(timeout=10)
        wait_until(lambda: all(r["scur"] in ("0", "") for r in self.hap.show_stat() if r["type"] == "2"),
                   timeout=10, what="no sessions left")


_LABS = {}


@pytest.fixture(scope="session")
def session_lab(request):
    lab = Lab(request.param).start()
    request.addfinalizer(lab.stop)
    return lab


@pytest.fixture
def lab(session_lab):
    """The version's lab, reset before the test (and its held requests
    released after it)."""
    session_lab.reset()
    yield session_lab
    session_lab.release_all()


@pytest.fixture
def version(session_lab):
    return session_lab.version


@pytest.fixture
def fresh_lab(session_lab):
    """A lab of the same version of its own, for tests that break it."""
    lab = Lab(session_lab.version).start()
    yield lab
    lab.stop()


@pytest.fixture
def member(lab):
    """run haproxy_member against the lab (unix socket unless args say otherwise)."""
    def call(check=False, diff=False, env=None, transport="unix", **args):
        if not any(k in args for k in ("socket", "stats_url")) and transport:
            args = dict(lab.conn(transport), **args)
        return run_module("haproxy_member", args, check=check, diff=diff, env=env)
    return call


class Background(object):
    """A module run in a thread, so the test can act while it waits."""

    def __init__(self, name, args, **kwargs):
        self.result = None
        self.finished_at = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(name, args, kwargs), daemon=True)
        self.started_at = time.monotonic()
        self.thread.start()

    def _run(self, name, args, kwargs):
        try:
            self.result = run_module(name, args, **kwargs)
        except Exception as error:  # reported by join()
            self.error = error
        self.finished_at = time.monotonic()

    @property
    def done(self):
        return self.finished_at is not None

    def join(self, timeout=60):
        self.thread.join(timeout)
        if self.error:
            raise self.error
        assert self.done, "module still running after %ss" % timeout
        return self.result


@pytest.fixture
def background():
    runs = []

    def start(name, args, **kwargs):
        run = Background(name, args, **kwargs)
        runs.append(run)
        return run
    yield start
    for run in runs:
        run.thread.join(60)


def run_module_as(uid, gid, name, args):
    """Run a module file as another user (for socket permission tests).

    The venv's interpreter lives under /root (mode 700 here), so the system
    python3 runs it, with the venv's site-packages for ansible-core's
    module_utils (which support Python 3.9+)."""
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no system python3 to run a module as another user")
    payload = dict(args, _ansible_check_mode=False, _ansible_diff=False)
    workdir = tempfile.mkdtemp(prefix="gentle-lb-as-")
    os.chmod(workdir, 0o755)
    args_file = os.path.join(workdir, "args.json")
    with open(args_file, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
    os.chmod(args_file, 0o644)
    env = dict(os.environ, HOME=workdir,
               PYTHONPATH=os.pathsep.join([ensure_collection_link(), sysconfig.get_paths()["purelib"]]))
    try:
        proc = subprocess.run(
            [python, "-m", "ansible_collections.gentle.lb.plugins.modules." + name, args_file],
            capture_output=True, text=True, timeout=60, env=env, cwd=workdir, user=uid, group=gid,
            extra_groups=[], check=False)
    finally:
        os.unlink(args_file)
        os.rmdir(workdir)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("no JSON from %s as uid %s: %s %s" % (name, uid, proc.stdout, proc.stderr))
