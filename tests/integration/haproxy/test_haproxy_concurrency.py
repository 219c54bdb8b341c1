# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The core's promises while somebody else touches a real HAProxy.

* Several runs at the same instant (released by one barrier, each in its own
  process, as separate AWX jobs or controllers would be) never leave a backend
  below min_active for longer than the repair takes, and at least one of them
  succeeds.  The in-rotation count is sampled every 10 ms from HAProxy itself.
* A drain that an operator undoes during the wait is put back, warned about
  and counted (``reasserted``); with ``reassert: false`` the run fails at once.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import threading
import time

import pytest

from conftest import VERSIONS, Lab  # conftest also puts the collection on sys.path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from race_sampler import Sampler, repair_bound  # noqa: E402

from ansible_collections.gentle.lb.plugins.module_utils import haproxy, member

RACE_BACKENDS = {
    "race": {"servers": ["r1 check", "r2 check", "r3 check", "r4 check"]},
}
RACERS = ["r1", "r2", "r3", "r4"]
FLOOR = 3            # of 4: only one of the racers may leave

# The racers are forked from this multi-threaded test process (the lab's app
# servers run in threads); they only open sockets, which is safe after fork.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


@pytest.fixture(scope="module", params=VERSIONS)
def race_lab(request):
    lab = Lab(request.param, backends=RACE_BACKENDS).start()
    request.addfinalizer(lab.stop)
    return lab


def in_rotation(lab):
    """How many race servers are READY (no DRAIN/MAINT bit), weight > 0 and UP."""
    states = dict((r["srv_name"], r) for r in lab.hap.servers_state("race"))
    stats = dict((r["svname"], r) for r in lab.hap.show_stat("race") if r["type"] == "2")
    count = 0
    for name in RACERS:
        row, stat = states[name], stats[name]
        if int(row["srv_admin_state"]) & 0x3b == 0 and int(row["srv_uweight"]) > 0 \
                and stat["status"].startswith("UP"):
            count += 1
    return count


def _racer(socket_path, server, barrier, lock_dir, results):
    """One run of the core, as a module process would do it."""
    if lock_dir:
        os.environ[member.LOCK_DIR_ENV] = lock_dir
    backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(socket_path, timeout=5))
    request = member.Request("drained", haproxy.selectors_from([server]), containers=["race"],
                             min_active=FLOOR, wait=False)
    barrier.wait()
    started = time.monotonic()
    try:
        member.run(backend, request)
        results[server] = ("ok", time.monotonic() - started)
    except member.LBError as error:
        results[server] = (error.error_type, time.monotonic() - started)


def race(lab, racers, separate_locks):
    """Start one process per racer, release them together; return (results, sampler)."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(racers))
    manager = context.Manager()
    results = manager.dict()
    lock_root = tempfile.mkdtemp(prefix="gentle-lb-locks-")
    processes = []
    for server in racers:
        # Separate lock directories stand for runs on different hosts, where
        # no lock is shared and only the re-read after the write protects the floor.
        lock_dir = os.path.join(lock_root, server if separate_locks else "shared")
        os.makedirs(lock_dir, exist_ok=True)
        processes.append(context.Process(target=_racer, args=(lab.hap.admin_socket, server, barrier,
                                                              lock_dir, results)))
    with Sampler(lambda: in_rotation(lab)) as sampler:
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        time.sleep(0.1)
    outcome = dict(results)
    manager.shutdown()
    return outcome, sampler


def restore(lab):
    for server in RACERS:
        lab.hap.send("set server race/%s state ready" % server)
    lab.hap.wait_servers_up(timeout=10)


def exchange_seconds(lab, rounds=20):
    """What one read + one write on this socket costs here, now (the repair is
    one re-read and one write per racer that collided)."""
    backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(lab.hap.admin_socket, timeout=5))
    started = time.monotonic()
    for _round in range(rounds):
        backend.read(["race"])
        lab.hap.send("set server race/r4 state ready")
    return (time.monotonic() - started) / rounds


@pytest.mark.parametrize("racers", [RACERS[:3], RACERS])
def test_runs_on_one_host_take_turns_and_never_cross_the_floor(race_lab, racers):
    restore(race_lab)
    for attempt in range(3):
        outcome, sampler = race(race_lab, racers, separate_locks=False)
        ok = [s for s, (kind, _t) in outcome.items() if kind == "ok"]
        refused = [s for s, (kind, _t) in outcome.items() if kind == "GuardRefusedError"]
        assert len(ok) == 1 and len(refused) == len(racers) - 1, outcome
        assert len(sampler.samples) > 5
        # The lock serialises read -> write -> re-read: the floor is never crossed at all.
        assert min(count for _s, count in sampler.samples) >= FLOOR, sampler.samples
        assert in_rotation(race_lab) == FLOOR
        restore(race_lab)


@pytest.mark.parametrize("racers", [RACERS[:3], RACERS])
def test_runs_on_different_hosts_repair_a_crossed_floor_at_once(race_lab, racers):
    restore(race_lab)
    dips, bounds, gaps, seen = [], [], [], []
    for attempt in range(5):
        outcome, sampler = race(race_lab, racers, separate_locks=True)
        ok = [s for s, (kind, _t) in outcome.items() if kind == "ok"]
        assert len(ok) >= 1, outcome
        assert all(kind in ("ok", "GuardRefusedError") for kind, _t in outcome.values()), outcome
        # However the writes interleaved, the runs leave the floor held...
        assert in_rotation(race_lab) >= FLOOR, outcome
        # ...and any moment below it lasts no longer than the repair (race_sampler.py).
        # What an exchange costs is measured right after each round: on a shared machine it changes.
        bounds.append(repair_bound(racers, exchange_seconds(race_lab), outcome))
        dips.append(sampler.certainly_below(FLOOR))
        gaps.append(sampler.resolution())
        seen.append(sampler.longest_below(FLOOR))
        assert dips[-1] <= bounds[-1], (dips, bounds, gaps, sampler.longest_below(FLOOR), outcome)
        restore(race_lab)
    print("racers=%d longest dip below the floor per round: %s for certain, %s with the gaps around it "
          "(bounds %s; sampler's longest gap %s)"
          % (len(racers), ", ".join("%.3f" % d for d in dips), ", ".join("%.3f" % d for d in seen),
             ", ".join("%.3f" % b for b in bounds), ", ".join("%.3f" % g for g in gaps)))


# ---------------------------------------------------------------- a wait is for a state


def test_a_drain_undone_by_an_operator_mid_wait_is_put_back(race_lab):
    restore(race_lab)
    held = race_lab.hap.hold("r1", seconds=60, backend="race")
    try:
        from lab.haproxy_lab import wait_until
        wait_until(lambda: int(race_lab.hap.server_stat("race", "r1")["scur"]) >= 1, timeout=5,
                   what="a session on r1")
        backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(race_lab.hap.admin_socket, timeout=5))
        request = member.Request("drained", haproxy.selectors_from(["r1"]), containers=["race"],
                                 wait_timeout=30)
        outcome = {}

        def drain():
            try:
                outcome["result"] = member.run(backend, request)
            except member.LBError as error:
                outcome["error"] = error
        thread = threading.Thread(target=drain)
        thread.start()
        wait_until(lambda: int(race_lab.hap.servers_state("race")[0]["srv_admin_state"]) & 0x08,
                   timeout=5, what="r1 drained")
        race_lab.hap.send("set server race/r1 state ready")       # the operator
        wait_until(lambda: int(race_lab.hap.servers_state("race")[0]["srv_admin_state"]) & 0x08,
                   timeout=5, what="r1 drained again by the waiting run")
        held.release()
        thread.join(30)
        result = outcome["result"]
        assert result["reasserted"] == 1
        assert result["members"][0]["state"] == "drained" and result["members"][0]["sessions"] == 0
        assert "goal reached" in result["msg"]
        assert any("found present" in w and "HAProxy was not reloaded" in w and "set drained again" in w
                   for w in result["warnings"]), result["warnings"]
        assert race_lab.admin_states()[("race", "r1")][0] & 0x08
    finally:
        held.release()
        restore(race_lab)


def test_with_reassert_off_an_operators_enable_fails_the_wait_at_once(race_lab):
    restore(race_lab)
    held = race_lab.hap.hold("r2", seconds=60, backend="race")
    try:
        from lab.haproxy_lab import wait_until
        wait_until(lambda: int(race_lab.hap.server_stat("race", "r2")["scur"]) >= 1, timeout=5,
                   what="a session on r2")
        backend = haproxy.HAProxyBackend(haproxy.RuntimeAPI(race_lab.hap.admin_socket, timeout=5))
        request = member.Request("drained", haproxy.selectors_from(["r2"]), containers=["race"],
                                 wait_timeout=30, reassert=False)
        outcome = {}

        def drain():
            try:
                outcome["result"] = member.run(backend, request)
            except member.LBError as error:
                outcome["error"] = error
        thread = threading.Thread(target=drain)
        thread.start()
        wait_until(lambda: int([r for r in race_lab.hap.servers_state("race") if r["srv_name"] == "r2"][0]
                               ["srv_admin_state"]) & 0x08, timeout=5, what="r2 drained")
        started = time.monotonic()
        race_lab.hap.send("set server race/r2 state ready")
        thread.join(30)
        error = outcome["error"]
        assert error.error_type == "StateLostError"
        assert time.monotonic() - started < 5           # at once, not at wait_timeout
        assert "reassert is off" in error.msg and "present" in error.msg
        assert error.result["members"][0]["state"] == "present"
    finally:
        held.release()
        restore(race_lab)
