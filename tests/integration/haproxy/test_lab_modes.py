# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's production modes against every HAProxy line: master-worker
reloads with an old worker still serving, the server-state-file, agent checks
and persistence.  Each test asserts the fact about HAProxy that haproxy_member
has to live with, so that tests of the module can build on these lab pieces.

Every test starts labs of its own (these modes change the configuration, and
reloads replace the process), so none uses the session lab.
"""

from __future__ import annotations

import time

import pytest

from conftest import VERSIONS, wait_until
from lab.haproxy_lab import (
    FAST_CHECKS, CookieClient, HAProxyLab, cookie_backend, parse_csv_stat, stick_table_backend)

FDRAIN, FMAINT = 0x08, 0x01


@pytest.fixture(params=VERSIONS)
def version(request):
    return request.param


@pytest.fixture
def make_lab(version):
    """Start HAProxyLab(version, **options), stopped after the test."""
    labs = []

    def start(**options):
        lab = HAProxyLab(version=version, **options).start()
        labs.append(lab)
        lab.wait_servers_up()
        return lab
    yield start
    for lab in labs:
        lab.stop()


def admin(lab, backend, server):
    return int(server_state(lab, backend, server)["srv_admin_state"])


def server_state(lab, backend, server):
    return next(r for r in lab.servers_state(backend) if r["srv_name"] == server)


def worker_stat(lab, pid, backend, server):
    """show stat of one server as the worker `pid` sees it (master CLI)."""
    rows = parse_csv_stat(lab.send_worker(pid, "show stat %s 4 -1" % backend))
    return next(r for r in rows if r["svname"] == server)


# --------------------------------------------------------------------------
# Reloads


def test_master_cli_reload_old_worker_keeps_its_request_new_one_forgets_the_drain(make_lab, version):
    lab = make_lab(master_worker=True)
    held = lab.hold("web2", seconds=30)
    lab.send("set server app/web2 state drain")

    reload = lab.reload("master-cli")

    # 2.6 closes the connection without a word (the master re-executes
    # itself); 3.x waits for the new worker and reports the outcome.
    if version == "2.6":
        assert reload.reply == ""
    else:
        assert reload.reply.startswith("Success=1\n--\n"), reload.reply
    (old_pid,) = reload.old_pids
    workers = lab.workers()
    assert [(w["pid"], w["role"]) for w in workers] == [(reload.new_pid, "current"), (old_pid, "old")]
    # The old worker still serves the held request, through its own view...
    old_view = worker_stat(lab, old_pid, "app", "web2")
    assert (old_view["status"], old_view["scur"]) == ("DRAIN", "1")
    # ...while the admin socket now is the new worker's: no session, and the
    # drain is gone (runtime state is not carried over without a state file).
    assert "\nPid: %d\n" % reload.new_pid in lab.send("show info")
    assert admin(lab, "app", "web2") == 0
    assert lab.server_stat("app", "web2")["scur"] == "0"
    lab.wait_status("app", "web2", "UP")

    held.release()
    assert held.wait() == 200 and held.server == "web2"
    wait_until(lambda: [w["pid"] for w in lab.workers()] == [reload.new_pid], timeout=10,
               what="the old worker to exit once its request ended")


def test_master_worker_reloads_keep_what_the_state_file_holds(make_lab):
    lab = make_lab(master_worker=True, server_state_file=True)
    lab.send("set server app/web2 state drain")
    lab.send("set weight app/web3 7")
    lab.save_server_state()

    lab.reload("master-cli")
    assert admin(lab, "app", "web2") == FDRAIN
    assert server_state(lab, "app", "web3")["srv_uweight"] == "7"

    # A change not saved is lost, and the reload brings the saved state back:
    # the file must be written after every change, restores included.
    lab.send("set server app/web2 state ready")
    lab.send("set server app/web1 state maint")
    lab.reload("signal")                       # what systemctl reload does
    assert admin(lab, "app", "web2") == FDRAIN
    assert admin(lab, "app", "web1") == 0

    lab.send("set server app/web1 state maint")
    lab.save_server_state()
    lab.reload("signal")
    assert admin(lab, "app", "web1") == FMAINT


def test_sf_reload_old_process_finishes_its_request(make_lab):
    lab = make_lab(server_state_file=True)
    held = lab.hold("web2", seconds=30)
    lab.send("set server app/web2 state drain")

    first = lab.reload("sf")                   # nothing saved yet: the drain is lost
    (old,) = lab.old_processes
    assert old.pid == first.old_pids[0] and old.poll() is None
    assert admin(lab, "app", "web2") == 0
    assert lab.server_stat("app", "web2")["scur"] == "0"   # the old process holds it

    lab.send("set server app/web2 state drain")
    lab.save_server_state()
    lab.reload("sf")
    assert admin(lab, "app", "web2") == FDRAIN

    held.release()
    assert held.wait() == 200
    old.wait(timeout=10)                       # the first process exits once it is done


# --------------------------------------------------------------------------
# Agent checks


def test_agent_ready_cancels_a_cli_drain_until_the_agent_is_disabled(make_lab):
    lab = make_lab(backends={"app": {"servers": [
        "web1 check", {"name": "web3", "options": "check weight 10", "agent": "ready"}]}})
    agent = lab.agent("web3")
    agent.wait_checks(1)

    # With the next check held open, no "ready" can be on its way: the CLI
    # drain shows, and it is the agent's answer (released) that undoes it.
    agent.hold()
    lab.send("set server app/web3 state drain")
    assert admin(lab, "app", "web3") == FDRAIN
    agent.release()
    wait_until(lambda: admin(lab, "app", "web3") == 0, timeout=5, what="the agent undoing the drain")

    # The agent's own words are admin states too, and its weight wins over
    # `set weight`.
    agent.set("drain")
    wait_until(lambda: admin(lab, "app", "web3") == FDRAIN, timeout=5, what="agent drain")
    agent.set("ready")
    wait_until(lambda: admin(lab, "app", "web3") == 0, timeout=5, what="agent ready")
    lab.send("set weight app/web3 3")
    assert server_state(lab, "app", "web3")["srv_uweight"] == "3"
    agent.set("up 100%")
    wait_until(lambda: server_state(lab, "app", "web3")["srv_uweight"] == "10", timeout=5,
               what="the agent's 100% of the initial weight 10")
    agent.set("50%")
    wait_until(lambda: server_state(lab, "app", "web3")["srv_uweight"] == "5", timeout=5,
               what="the agent's 50% of the initial weight 10")

    # `disable agent` stops it asking, so a CLI drain holds.
    agent.set("ready")
    assert lab.send("disable agent app/web3") == "\n"
    time.sleep(1.0)                            # a check already in flight ends first
    asked = agent.checks
    lab.send("set server app/web3 state drain")
    time.sleep(0.6)                            # three agent-inter periods
    assert agent.checks == asked
    assert admin(lab, "app", "web3") == FDRAIN
    lab.send("enable agent app/web3")
    wait_until(lambda: admin(lab, "app", "web3") == 0, timeout=5, what="the re-enabled agent")


# --------------------------------------------------------------------------
# Persistence


def test_cookie_client_keeps_reaching_a_drain_server(make_lab):
    lab = make_lab(backends={"sticky": cookie_backend()})
    client = CookieClient(lab, "sticky")
    target = client.get()
    assert client.cookie == target
    lab.send("set server sticky/%s state drain" % target)
    before = lab.server_stat("sticky", target)

    assert [client.get() for attempt in range(5)] == [target] * 5
    others = set(lab.request("/", headers={"X-Backend": "sticky"})[1]["x-served-by"] for attempt in range(6))
    assert target not in others
    after = lab.server_stat("sticky", target)
    # Persistent sessions count in stot but not in lbtot (load-balanced picks).
    assert int(after["stot"]) - int(before["stot"]) == 5
    assert after["lbtot"] == before["lbtot"]

    # MAINT stops honouring the cookie: the client is moved and re-cookied.
    lab.send("set server sticky/%s state maint" % target)
    moved = client.get()
    assert moved != target and client.cookie == moved


def test_stick_table_client_keeps_reaching_a_drain_server(make_lab):
    lab = make_lab(backends={"stick": stick_table_backend()})

    def served():
        return lab.request("/", headers={"X-Backend": "stick"})[1]["x-served-by"]
    target = served()
    assert "server_key=%s" % target in lab.send("show table stick")
    lab.send("set server stick/%s state drain" % target)
    assert [served() for attempt in range(5)] == [target] * 5
    lab.send("set server stick/%s state maint" % target)
    moved = served()
    assert moved != target and "server_key=%s" % moved in lab.send("show table stick")


# --------------------------------------------------------------------------
# Leaving MAINT: what tells that a check ran since


@pytest.mark.parametrize("checks", [FAST_CHECKS, "inter 200ms fall 3 rise 2"])
def test_ready_from_maint_is_up_before_any_check_and_health_tells_when_one_passed(make_lab, checks):
    """`state ready` from MAINT puts the server UP at once with its check
    health at `rise` (status "UP 1/<fall>"), before any check ran; the first
    passing check raises the health to rise + fall - 1 ("UP").  With fall >= 2
    that difference is how a client can tell a check passed after the change."""
    rise = int(checks.split("rise ")[1])
    fall = int(checks.split("fall ")[1].split()[0])
    lab = make_lab(backends={"app": {"default_server": checks, "servers": ["web1 check", "web3 check"]}})
    app = lab.app("web3")
    lab.send("set server app/web3 state maint")
    wait_until(lambda: server_state(lab, "app", "web3")["srv_check_state"] == "14", timeout=5,
               what="checks paused (0x08) in MAINT")
    checks_before = app.health_checks

    started = time.monotonic()
    lab.send("set server app/web3 state ready")
    row = lab.server_stat("app", "web3")
    state = server_state(lab, "app", "web3")
    if app.health_checks == checks_before:        # no check ran yet (the usual case)
        assert row["status"] == "UP 1/%d" % fall, row["status"]
        assert int(row["check_health"]) == rise == int(state["srv_check_health"])
        assert row["check_status"] == "L7OK"         # the last check before MAINT, not a new one

    wait_until(lambda: app.health_checks > checks_before, timeout=5, what="the first check after ready")
    first_check = app.last_health_check - started
    wait_until(lambda: lab.server_stat("app", "web3")["status"] == "UP", timeout=5, what="full health")
    assert int(server_state(lab, "app", "web3")["srv_check_health"]) == rise + fall - 1
    print("\n%s %s: first check %.3fs after state ready" % (lab.version, checks, first_check))
