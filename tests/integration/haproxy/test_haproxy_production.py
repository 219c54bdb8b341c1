# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""haproxy_member where production HAProxy differs from a quiet lab: reloads
(master-worker and -sf) with and without a saved server-state-file, old
workers still serving after a reload, agent checks, persistent clients, and
``present`` as a health gate.

What HAProxy itself decides (whether a reload loads the saved file, what an
old worker reports and accepts through the master CLI) runs on every line;
what the module decides on top of that (warnings, agent bookkeeping,
persistence arithmetic and the escalation) runs on one (see conftest).
Every test starts labs of its own: these modes change the configuration, and
reloads replace the process.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from conftest import ONE_VERSION, VERSIONS, run_module, wait_until
from lab.haproxy_lab import CookieClient, HAProxyLab, cookie_backend

FDRAIN, FMAINT = 0x08, 0x01
EVERY_LINE = pytest.mark.parametrize("version", VERSIONS)
ONE_LINE = pytest.mark.parametrize("version", [ONE_VERSION])


@pytest.fixture
def make_lab():
    """Start HAProxyLab(version, **options); every lab and held request is
    stopped after the test."""
    labs, held = [], []

    def start(version, **options):
        lab = HAProxyLab(version=version, **options).start()
        labs.append(lab)
        lab.wait_servers_up()
        original = lab.hold

        def hold(*args, **kwargs):
            request = original(*args, **kwargs)
            held.append(request)
            return request
        lab.hold = hold
        return lab
    yield start
    for request in held:
        request.release()
    for lab in labs:
        lab.stop()


def admin(lab, backend, server):
    return int(state_row(lab, backend, server)["srv_admin_state"])


def state_row(lab, backend, server):
    return next(r for r in lab.servers_state(backend) if r["srv_name"] == server)


def saved_admin(lab, backend, server):
    """The admin state the server-state-file holds for the server (None: not saved yet)."""
    if not lab.server_state_path.exists():
        return None
    for line in lab.server_state_path.read_text().splitlines():
        words = line.split()
        if len(words) > 6 and words[1] == backend and words[3] == server:
            return int(words[6])
    return None


def module_args(lab, **args):
    base = dict(socket=lab.admin_socket, config=[str(lab.config_path)])
    base.update(args)
    return base


def warnings(result):
    """The warning texts of a module result (ansible-core 2.19+ returns each
    as a structured summary with the text under event.msg)."""
    return [w.get("event", {}).get("msg", str(w)) if isinstance(w, dict) else w
            for w in result.get("warnings") or []]


def scur(lab, backend, server):
    return int(lab.server_stat(backend, server)["scur"])


# --------------------------------------------------------------------------
# Reloads and old workers


@EVERY_LINE
def test_saved_drain_survives_a_master_cli_reload_and_the_old_worker_keeps_the_wait_open(
        make_lab, background, version):
    lab = make_lab(version, master_worker=True, server_state_file=True)
    held = lab.hold("web2", seconds=60)
    run = background("haproxy_member", module_args(
        lab, master_socket=lab.master_socket, backend=["app"], server=["web2"], state="drained",
        save_state=True, wait_timeout=30))
    wait_until(lambda: saved_admin(lab, "app", "web2") == FDRAIN, timeout=10, what="the drain saved")
    assert admin(lab, "app", "web2") == FDRAIN

    reload = lab.reload("master-cli")
    (old_pid,) = reload.old_pids
    assert admin(lab, "app", "web2") == FDRAIN                # the new worker loaded it
    assert scur(lab, "app", "web2") == 0                      # ...and does not see the old session
    info = run_module("haproxy_member_info", module_args(lab, master_socket=lab.master_socket,
                                                         backend=["app"], server=["web2"]))
    expected = [dict(pid=reload.new_pid, role="current", sessions=0), dict(pid=old_pid, role="old", sessions=1)]
    assert info["members"][0]["workers"] == expected
    assert info["members"][0]["sessions"] == 1
    time.sleep(0.5)
    assert not run.done, run.result                           # the old worker still holds it

    held.release()
    result = run.join()
    assert not result.failed, result
    assert result["reasserted"] == 0
    assert result["members"][0]["state"] == "drained" and result["members"][0]["sessions"] == 0
    assert result["members"][0]["drain_ended_by"] == "drain"
    assert not warnings(result), warnings(result)
    assert held.wait(5) == 200


@ONE_LINE
def test_saved_drain_survives_an_sf_reload_and_the_hidden_old_process_is_warned_about(
        make_lab, background, version):
    lab = make_lab(version, server_state_file=True)
    held = lab.hold("web2", seconds=60)
    run = background("haproxy_member", module_args(lab, backend=["app"], server=["web2"], state="drained",
                                                   save_state=True, wait_timeout=30))
    wait_until(lambda: saved_admin(lab, "app", "web2") == FDRAIN, timeout=10, what="the drain saved")
    reload = lab.reload("sf")
    assert admin(lab, "app", "web2") == FDRAIN
    result = run.join()        # the new process shows no session: -sf leaves nothing to ask the old one
    assert not result.failed, result
    assert result["reasserted"] == 0
    reloaded = "HAProxy was reloaded or restarted during the wait (pid %s -> %s)" % (reload.old_pids[0],
                                                                                     reload.new_pid)
    assert any(reloaded in w and "master_socket" in w for w in warnings(result)), warnings(result)
    assert not held.done                                      # the old process still serves it
    held.release()
    assert held.wait(5) == 200


@ONE_LINE
def test_without_a_state_file_the_wait_puts_back_a_drain_a_reload_dropped(make_lab, background, version):
    lab = make_lab(version, master_worker=True)
    held = lab.hold("web2", seconds=60)
    run = background("haproxy_member", dict(socket=lab.admin_socket, backend=["app"], server=["web2"],
                                            state="drained", wait_timeout=30))
    wait_until(lambda: admin(lab, "app", "web2") == FDRAIN, timeout=10, what="web2 drained")
    reload = lab.reload("signal")                             # what systemctl reload does
    result = run.join()
    assert not result.failed, result
    assert result["reasserted"] == 1, result
    assert admin(lab, "app", "web2") == FDRAIN
    assert any("found present" in w and "HAProxy was reloaded or restarted: pid %s -> %s"
               % (reload.old_pids[0], reload.new_pid) in w for w in warnings(result)), warnings(result)
    held.release()


@EVERY_LINE
def test_old_workers_sessions_are_reported_per_process_and_force_ends_them(make_lab, version):
    lab = make_lab(version, master_worker=True)
    held = lab.hold("web2", seconds=60)
    reload = lab.reload("master-cli")
    (old_pid,) = reload.old_pids
    args = dict(socket=lab.admin_socket, master_socket=lab.master_socket, backend=["app"], server=["web2"],
                state="drained", wait_timeout=0.5)

    timed_out = run_module("haproxy_member", args)
    assert timed_out.failed and timed_out["error_type"] == "WaitTimeoutError", timed_out
    assert "app/web2 1 session" in timed_out["msg"]
    entry = timed_out["members"][0]
    assert entry["workers"] == [dict(pid=reload.new_pid, role="current", sessions=0),
                                dict(pid=old_pid, role="old", sessions=1)]
    assert entry["drain_ended_by"] is None

    forced = run_module("haproxy_member", dict(args, on_timeout="force"))
    assert not forced.failed, forced
    assert "'shutdown session' sent for the sessions old workers held (1 in old worker %d)" % old_pid \
        in forced["msg"] and "no session is left" in forced["msg"], forced["msg"]
    assert forced["members"][0]["drain_ended_by"] == "force"
    held.wait(5)
    assert held.done and held.status != 200                   # cut, as force promises


# --------------------------------------------------------------------------
# Agent checks


@ONE_LINE
def test_agent_is_kept_quiet_while_drained_and_enabled_again_by_present(make_lab, tmp_path, version):
    lab = make_lab(version, backends={"app": {"servers": [
        "web1 check", {"name": "web3", "options": "check weight 10", "agent": "ready"}]}})
    agent = lab.agent("web3")
    agent.wait_checks(1)
    memory = tmp_path / "agents.json"
    args = dict(socket=lab.admin_socket, backend=["app"], server=["web3"], agent_memory=str(memory))

    drained = run_module("haproxy_member", dict(args, state="drained"))
    assert not drained.failed, drained
    assert drained["members"][0]["agent_check"] is True and drained["members"][0]["agent_enabled"] is False
    assert int(state_row(lab, "app", "web3")["srv_agent_state"]) & 0x04 == 0      # disabled
    assert list(json.loads(memory.read_text())["disabled"]) == ["%s app/web3" % os.path.realpath(lab.admin_socket)]
    asked = agent.checks
    agent.set("up 100%")
    time.sleep(0.7)                                           # more than three agent-inter periods
    assert agent.checks == asked and admin(lab, "app", "web3") == FDRAIN

    restored = run_module("haproxy_member", dict(args, state="present"))
    assert not restored.failed, restored
    assert int(state_row(lab, "app", "web3")["srv_agent_state"]) & 0x04            # enabled again
    assert json.loads(memory.read_text())["disabled"] == {}
    agent.wait_checks(2)
    assert admin(lab, "app", "web3") == 0 and state_row(lab, "app", "web3")["srv_uweight"] == "10"

    # An agent someone else disabled stays disabled, with a warning.
    lab.send("disable agent app/web3")
    assert not run_module("haproxy_member", dict(args, state="drained")).failed
    assert not memory.exists() or json.loads(memory.read_text())["disabled"] == {}
    left = run_module("haproxy_member", dict(args, state="present"))
    assert not left.failed, left
    assert int(state_row(lab, "app", "web3")["srv_agent_state"]) & 0x04 == 0
    assert any("its agent check is disabled, and not by gentle.lb" in w for w in warnings(left)), warnings(left)


# --------------------------------------------------------------------------
# Persistence


class StickyClients(object):
    """Browser-like clients pinned to one server by its cookie, each sending
    /slow requests back to back, staggered, so the server always has a
    session open; records every answer.  Three of them: on a loaded machine
    one client thread can stall between two requests for longer than the
    others' overlap, and a moment with no session open ends the drain as it
    should (the test would then see a drain that never needed its ladder)."""

    def __init__(self, lab, backend, hold=0.4, count=3):
        first = CookieClient(lab, backend)
        self.target = first.get()
        self.clients = [first] + [CookieClient(lab, backend) for _number in range(count - 1)]
        for client in self.clients[1:]:
            client.cookie = first.cookie
        self.hold = hold
        self.stopping = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self._loop, args=(c, i * hold / count), daemon=True)
                        for i, c in enumerate(self.clients)]

    def _loop(self, client, delay):
        time.sleep(delay)
        while not self.stopping.is_set():
            try:
                client.get("/slow?seconds=%s" % self.hold)
            except Exception as error:     # reported by the test
                self.errors.append(error)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(10)


@ONE_LINE
def test_persistent_clients_are_counted_and_the_grace_period_stops_honouring_them(make_lab, version):
    lab = make_lab(version, backends={"sticky": cookie_backend()})
    with StickyClients(lab, "sticky") as sticky:
        target = sticky.target
        args = dict(socket=lab.admin_socket, backend=["sticky"], server=[target], state="drained")
        wait_until(lambda: scur(lab, "sticky", target) >= 1, timeout=5, what="a sticky session")

        # Persistence keeps the drain from ending: say so, and name the way out.
        kept = run_module("haproxy_member", dict(args, wait_timeout=1.5, on_timeout="continue"))
        assert not kept.failed, kept
        entry = kept["members"][0]
        assert entry["persistent_arrivals"] >= 2 and entry["drain_ended_by"] is None, entry
        assert any("reached it through persistence" in w and "persistence_grace" in w
                   for w in warnings(kept)), warnings(kept)

        # The ladder: after the grace period MAINT, the clients move, the drain ends.
        started = time.monotonic()
        laddered = run_module("haproxy_member", dict(args, wait_timeout=15, persistence_grace=1))
        took = time.monotonic() - started
        assert not laddered.failed, laddered
        entry = laddered["members"][0]
        assert entry["state"] == "drained" and entry["status"] == "MAINT" and entry["admin_flags"] == ["FMAINT"], entry
        assert entry["drain_ended_by"] == "maintenance" and entry["sessions"] == 0
        assert entry["persistent_arrivals"] >= 1
        assert 1.0 <= laddered["waited"] < took
        answered = [len(c.served) for c in sticky.clients]
        wait_until(lambda: all(len(c.served) > n + 1 for c, n in zip(sticky.clients, answered)), timeout=5,
                   what="the clients' next answers")
        moved_to = [c.served[n + 1] for c, n in zip(sticky.clients, answered)]
    assert not sticky.errors, sticky.errors                   # nobody got an error on the way
    assert target not in moved_to, moved_to                   # the clients were moved


# --------------------------------------------------------------------------
# present as a health gate


@ONE_LINE
def test_present_says_it_cannot_gate_on_a_check_with_fall_1(make_lab, version):
    lab = make_lab(version, backends={"app": {"default_server": "inter 200ms fall 1 rise 1",
                                              "servers": ["web1 check", "web3 check"]}})
    lab.send("set server app/web3 state maint")
    result = run_module("haproxy_member", dict(socket=lab.admin_socket, backend=["app"], server=["web3"],
                                               state="present"))
    assert not result.failed, result
    assert result["members"][0]["check_fall"] == 1
    assert any("fall 1" in w and "real health gate" in w for w in warnings(result)), warnings(result)
