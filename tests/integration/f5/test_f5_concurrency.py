# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capacity guard holds over F5 under concurrency (against the emulator).

Several runs at the same instant -- released by one barrier, each in its own
process, with its own lock directory and token cache when they stand for
different controllers -- never leave a pool below min_active for longer than
the repair takes, and at least one of them succeeds.  The in-rotation count is
sampled every 10 ms from the emulator's own state (the emulator runs in this
process, so sampling costs no request).  As tests/integration/haproxy/
test_haproxy_concurrency.py does for HAProxy.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time

import pytest

from lab.f5_emulator import F5Emulator   # the repository is on sys.path (conftest.py)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from race_sampler import Sampler, repair_bound  # noqa: E402

from ansible_collections.gentle.lb.plugins.module_utils import f5 as f5_utils
from ansible_collections.gentle.lb.plugins.module_utils import member

RACERS = ["10.0.1.%d:80" % i for i in range(1, 5)]
FLOOR = 3            # of 4: only one of the racers may leave
SEED = {"pools": [{"name": "race", "members": [{"name": name} for name in RACERS]}]}

# The racers are forked from this multi-threaded test process (the emulator
# serves from a thread); they only open sockets, which is safe after fork.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


@pytest.fixture(scope="module")
def race_f5():
    emulator = F5Emulator(seed=SEED, drain_rate=1000)
    emulator.start()
    yield emulator
    emulator.stop()


def in_rotation(emulator):
    """How many race members are enabled (as stored) and usable (no monitor: unknown)."""
    state = emulator.state
    with state.lock:
        pool = state.pools["/Common/race"]
        return sum(1 for m in pool.members.values() if m.session == "user-enabled" and m.state == "user-up")


def connection(emulator):
    return dict(server="127.0.0.1", server_port=emulator.port, user="admin", password="admin",
                validate_certs=False, timeout=10)


def _racer(conn, name, barrier, lock_dir, results):
    """One run of the core, as a module process on its own controller would do it."""
    os.environ[member.LOCK_DIR_ENV] = lock_dir
    os.environ[f5_utils.TOKEN_DIR_ENV] = os.path.join(lock_dir, "tokens")
    backend = f5_utils.connect(conn)
    request = member.Request("drained", f5_utils.MemberSelector.many([name]), containers=["/Common/race"],
                             min_active=FLOOR, wait=False)
    backend.transport.client.login()           # logged in before the start, as a warm token cache would be
    barrier.wait()
    started = time.monotonic()
    try:
        member.run(backend, request)
        results[name] = ("ok", time.monotonic() - started)
    except member.LBError as error:
        results[name] = (error.error_type, time.monotonic() - started)


def race(emulator, racers, separate_locks):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(racers))
    manager = context.Manager()
    results = manager.dict()
    lock_root = tempfile.mkdtemp(prefix="gentle-lb-f5-locks-")
    processes = []
    for name in racers:
        # Separate lock directories stand for runs on different controllers, where
        # no lock is shared and only the re-read after the write protects the floor.
        lock_dir = os.path.join(lock_root, name if separate_locks else "shared")
        os.makedirs(lock_dir, exist_ok=True)
        processes.append(context.Process(target=_racer, args=(connection(emulator), name, barrier, lock_dir,
                                                              results)))
    with Sampler(lambda: in_rotation(emulator)) as sampler:
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        time.sleep(0.1)
    outcome = dict(results)
    manager.shutdown()
    return outcome, sampler


def restore(emulator):
    state = emulator.state
    with state.lock:
        pool = state.pools["/Common/race"]
        for member_ in pool.members.values():
            state.update_member(pool, member_, {"session": "user-enabled", "state": "user-up"})


def _exchanges(conn, name, rounds, barrier, results):
    transport = f5_utils.RestTransport(f5_utils.RestClient(**conn))
    item = {"name": name, "partition": "Common", "fullPath": "/Common/" + name}
    transport.client.login()
    barrier.wait()
    started = time.monotonic()
    for dummy in range(rounds):
        transport.pool_stats("/Common/race", [])
        transport.set_admin("/Common/race", item, "enabled")
    results[name] = (time.monotonic() - started) / rounds
    transport.close()


def exchange_seconds(emulator, parallel, rounds=10):
    """What the repair costs here, now, with as many runs at once as race: one
    stats read and one PATCH (the floor check and the undo of one colliding run).
    The emulator serves from this process, so contention slows it as it slows
    the racers; the slowest of the parallel clients counts."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(parallel)
    manager = context.Manager()
    results = manager.dict()
    processes = [context.Process(target=_exchanges, args=(connection(emulator), RACERS[i], rounds, barrier,
                                                          results)) for i in range(parallel)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    slowest = max(results.values())
    manager.shutdown()
    return slowest


@pytest.mark.parametrize("racers", [RACERS[:3], RACERS])
def test_runs_on_one_controller_take_turns_and_never_cross_the_floor(race_f5, racers):
    restore(race_f5)
    for attempt in range(2):
        outcome, sampler = race(race_f5, racers, separate_locks=False)
        ok = [n for n, (kind, _t) in outcome.items() if kind == "ok"]
        refused = [n for n, (kind, _t) in outcome.items() if kind == "GuardRefusedError"]
        assert len(ok) == 1 and len(refused) == len(racers) - 1, outcome
        assert len(sampler.samples) > 5
        # The lock serialises read -> write -> re-read: the floor is never crossed at all.
        assert min(count for _s, count in sampler.samples) >= FLOOR, sampler.samples
        assert in_rotation(race_f5) == FLOOR
        restore(race_f5)


@pytest.mark.parametrize("racers", [RACERS[:3], RACERS])
def test_runs_on_different_controllers_repair_a_crossed_floor_at_once(race_f5, racers):
    restore(race_f5)
    dips, bounds, seen = [], [], []
    per_exchange = None
    for attempt in range(3):
        outcome, sampler = race(race_f5, racers, separate_locks=True)
        ok = [n for n, (kind, _t) in outcome.items() if kind == "ok"]
        assert len(ok) >= 1, outcome
        assert all(kind in ("ok", "GuardRefusedError") for kind, _t in outcome.values()), outcome
        # However the writes interleaved, the runs leave the floor held...
        assert in_rotation(race_f5) >= FLOOR, outcome
        # ...and any moment below it lasts no longer than the repair (race_sampler.py):
        # each colliding run reads the pool's stats and undoes its write.
        if per_exchange is None:
            per_exchange = exchange_seconds(race_f5, len(racers))
        bounds.append(repair_bound(racers, per_exchange, outcome))
        dips.append(sampler.certainly_below(FLOOR))
        seen.append(sampler.longest_below(FLOOR))
        assert dips[-1] <= bounds[-1], (dips, bounds, seen, outcome)
        restore(race_f5)
    print("racers=%d longest dip below the floor per round: %s for certain, %s with the gaps around it (bounds %s)"
          % (len(racers), ", ".join("%.3f" % d for d in dips), ", ".join("%.3f" % d for d in seen),
             ", ".join("%.3f" % b for b in bounds)))
