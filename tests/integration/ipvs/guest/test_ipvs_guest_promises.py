# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The core's promises against the real kernel IPVS, while somebody else
touches the table.

* A drain that someone undoes during the wait (``ipvsadm -e ... -w 5``, as a
  keepalived checker would) is put back, warned about and counted
  (``reasserted``); with ``reassert: false`` the run fails at once with
  StateLostError.
* Several real servers in one call: one plan, one capacity guard that counts
  them all, one wait that lasts as long as the slowest.
* Several runs at the same instant (one process each, released by one
  barrier; separate GENTLE_LB_LOCK_DIR values stand for different
  controllers) never leave the service below min_active for longer than the
  repair takes, and at least one of them succeeds.  The table is sampled every
  10 ms from /proc/net/ip_vs (the kernel's own text, not the parser under test).
* The lock that serialises runs on one director is per network namespace,
  which is what an IPVS table is per.

Each connection-holding test uses its own port (see test_ipvs_guest_live.py).
"""

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from ansible_collections.gentle.lb.plugins.module_utils import ipvs, member

from test_ipvs_guest_live import rs, wait_for

SAMPLE_EVERY = 0.010

# The racers are forked from this process, whose sampler runs in a thread;
# they only start ipvsadm processes, which is safe after fork.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


def nat_service(lab, port, weights):
    return lab.service(weights, port=port)


# ---------------------------------------------------------------- a wait is for a state


def drain_then_undo(lab, director, port, **module_args):
    """rs1 holding one connection on VIP:port, rs2/rs3 in rotation; a drain of
    rs1 started in the background, then undone the way keepalived's checker
    does it when it sees the server healthy again.  -> (service, held
    connection, background call, when the undo was written)."""
    service = nat_service(lab, port, [1, 0, 0])
    held = lab.hold(1, port=port)
    for index in (2, 3):
        director.ipvsadm("-e", "-t", "10.0.0.100:%d" % port, "-r", "172.16.%d.2:%d" % (index, port), "-m", "-w", "1")
    call = lab.in_background(director.member, address="172.16.1.2", state="drained", virtual_service=service,
                             wait_timeout=60, **module_args)
    wait_for(lambda: director.dests()[rs(1, port)]["weight"] == 0)
    director.ipvsadm("-e", "-t", "10.0.0.100:%d" % port, "-r", "172.16.1.2:%d" % port, "-m", "-w", "5")
    return service, held, call, time.monotonic()


def test_a_drain_undone_mid_wait_is_put_back_and_warned(lab, director):
    port = 86
    rs1 = rs(1, port)
    service, held, call, undone_at = drain_then_undo(lab, director, port)
    wait_for(lambda: director.dests()[rs1]["weight"] == 0, timeout=30)
    put_back_after = time.monotonic() - undone_at
    assert lab.ask(port) in ("rs2", "rs3")
    assert not call.done.is_set(), "returned while a connection was open"
    held.release()
    assert call.done.wait(30)
    result = call.result
    assert not result.failed, result
    assert result["reasserted"] == 1
    entry = result["members"][0]
    assert (entry["state"], entry["weight"], entry["sessions"]) == ("drained", 0, 0)
    assert "goal reached" in result["msg"]
    assert ("real server tcp:10.0.0.100:86/172.16.1.2:86: found present weight 5 while waiting for drained; "
            "set drained again") in director.warnings(result)
    after = director.dests()[rs1]
    assert (after["fwd"], after["weight"]) == ("-m", 0)          # restated, still NAT
    # The weight remembered is the one it had when it was put back: a restore
    # brings back what keepalived (or the operator) had set.
    assert director.memory()["%s 172.16.1.2:%d" % (service, port)] == 5
    print("put back %.2fs after the undo" % put_back_after)


def test_with_reassert_off_an_undone_drain_fails_at_once(lab, director):
    port = 87
    rs1 = rs(1, port)
    _service, held, call, undone_at = drain_then_undo(lab, director, port, reassert=False)
    assert call.done.wait(30)
    # At the next poll (0.2 s) and the module's exit, not at wait_timeout=60
    # (the bound leaves room for a loaded machine).
    assert call.finished_at - undone_at < 15, "not at once"
    result = call.result
    held.release()
    assert result.failed
    assert result["error_type"] == "StateLostError"
    assert result["msg"] == (
        "real server 172.16.1.2:87: left drained during the wait (now tcp:10.0.0.100:87/172.16.1.2:87 present "
        "weight 5); reassert is off, so this run stops here; find out who changes it, then rerun")
    assert result["members"][0]["state"] == "present" and result["members"][0]["weight"] == 5
    assert director.dests()[rs1]["weight"] == 5                # left as the other party left it


# ---------------------------------------------------------------- several real servers in one call


def pin(director, port, index):
    """Only rs<index> in rotation on VIP:port (so the next connection lands there)."""
    for other in (1, 2, 3):
        director.ipvsadm("-e", "-t", "10.0.0.100:%d" % port, "-r", "172.16.%d.2:%d" % (other, port), "-m",
                         "-w", "1" if other == index else "0")


def test_several_real_servers_one_plan_one_guard_one_wait(lab, director):
    port = 88
    service = nat_service(lab, port, [1, 1, 1])
    pin(director, port, 1)
    on_rs1 = lab.hold(1, port=port)
    pin(director, port, 2)
    on_rs2 = lab.hold(1, port=port)
    for index in (1, 2, 3):
        director.ipvsadm("-e", "-t", "10.0.0.100:%d" % port, "-r", "172.16.%d.2:%d" % (index, port), "-m", "-w",
                         str(index + 1))
    dests = director.dests()
    assert (dests[rs(1, port)]["active"], dests[rs(2, port)]["active"]) == (1, 1)
    start = director.snapshot()
    both = ["172.16.1.2", "172.16.2.2"]

    # One guard counts both: each alone would leave 2 of 3 (>= 2), together 1.
    refused = director.member(address=both, state="drained", virtual_service=service, min_active=2)
    assert refused.failed and refused["error_type"] == "GuardRefusedError"
    assert refused["msg"] == ("virtual service tcp:10.0.0.100:88: taking 172.16.1.2:88, 172.16.2.2:88 out would "
                              "leave 1 of 3 members in rotation and healthy, below min_active=2 (2); restore other "
                              "members first or lower min_active")
    assert refused["guard"] == [dict(container=service, members=3, active=3, needed=2,
                                     leaving=["172.16.1.2:88", "172.16.2.2:88"], may_leave=1)]
    assert director.snapshot() == start and director.memory() == {}

    call = lab.in_background(director.member, address=both, state="drained", virtual_service=service,
                             wait_timeout=60)
    wait_for(lambda: director.dests()[rs(1, port)]["weight"] == 0 and director.dests()[rs(2, port)]["weight"] == 0)
    on_rs1.release()
    time.sleep(1.5)
    assert not call.done.is_set(), "returned while rs2 still had a connection"
    on_rs2.release()
    assert call.done.wait(30)
    result = call.result
    assert not result.failed, result
    assert call.finished_at - on_rs2.released_at < 2.0
    assert sorted((m["name"], m["state"], m["weight_before"], m["sessions"]) for m in result["members"]) == [
        ("172.16.1.2:88", "drained", 2, 0), ("172.16.2.2:88", "drained", 3, 0)]
    assert result["waited"] >= 1.5
    print("two servers: returned %.2fs after the second one's connection closed (waited %.2fs)"
          % (call.finished_at - on_rs2.released_at, result["waited"]))
    assert director.memory() == {"%s 172.16.1.2:88" % service: 2, "%s 172.16.2.2:88" % service: 3}
    assert director.dests()[rs(3, port)]["weight"] == 4                  # untouched

    restored = director.member(address=both, state="present", virtual_service=service)
    assert restored["changed"] is True
    assert director.snapshot() == start


# ---------------------------------------------------------------- the guard under concurrency

RACE_VIP = "10.0.0.120"
RACE_SERVICE = "tcp:%s:80" % RACE_VIP
RACERS = ["10.0.0.21", "10.0.0.22", "10.0.0.23", "10.0.0.24"]
FLOOR = 3            # of 4: only one of the racers may leave


def race_table(director):
    director.clear()
    director.restore("-A -t %s:80 -s rr\n" % RACE_VIP + "".join(
        "-a -t %s:80 -r %s:80 -g -w 1\n" % (RACE_VIP, address) for address in RACERS))


def in_rotation():
    """Destinations of the race service with weight > 0, from the kernel's
    own /proc/net/ip_vs (hex addresses; nothing of the module involved)."""
    wanted = "TCP  %08X:0050" % int.from_bytes(bytes(int(p) for p in RACE_VIP.split(".")), "big")
    count = 0
    inside = False
    with open("/proc/net/ip_vs") as handle:
        for line in handle:
            words = line.split()
            if not words:
                continue
            if words[0] != "->":
                inside = line.startswith(wanted)
            elif inside and words[1] != "RemoteAddress:Port" and int(words[3]) > 0:
                count += 1
    return count


class Sampler(object):
    """Samples the in-rotation count every 10 ms until stopped."""

    def __init__(self):
        self.samples = []          # (monotonic time before the read, count, time after it)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stopping.is_set():
            before = time.monotonic()
            count = in_rotation()
            self.samples.append((before, count, time.monotonic()))
            self.stopping.wait(SAMPLE_EVERY)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(5)

    def below(self, floor):
        return [(before, after) for before, count, after in self.samples if count < floor]

    def longest_below(self, floor):
        """The longest stretch (seconds) the count stayed below ``floor``."""
        longest, since = 0.0, None
        for stamp, count, _after in self.samples:
            if count < floor and since is None:
                since = stamp
            elif count >= floor and since is not None:
                longest = max(longest, stamp - since)
                since = None
        if since is not None:
            longest = max(longest, self.samples[-1][0] - since)
        return longest


class TimedBackend(ipvs.IPVSBackend):
    """The module's backend, noting when each of its writes started and ended."""

    def __init__(self, state_file):
        super(TimedBackend, self).__init__(ipvs.Ipvsadm(ipvs.spawn_runner), memory=ipvs.WeightMemory(state_file),
                                           check_managers=False)
        self.writes = []           # (state written, monotonic start, monotonic end)

    def apply(self, change, request):
        started = time.monotonic()
        try:
            return super(TimedBackend, self).apply(change, request)
        finally:
            self.writes.append((change.state, started, time.monotonic()))


def repair_windows(writes):
    """The moments a run was out of rotation and then put itself back: from
    the start of its drain write to the end of its undo.  A run that stays out
    (it succeeded) has no window: the floor must hold with it out."""
    windows = []
    for (state, started, _ended), undo in zip(writes, writes[1:]):
        if state == "drained" and undo[0] == "present":
            windows.append((started, undo[2]))
    return windows


def _racer(address, barrier, lock_dir, state_file, results):
    """One run of the core, as a module process would do it."""
    os.environ[member.LOCK_DIR_ENV] = lock_dir
    request = member.Request("drained", ipvs.selectors([address]), containers=[RACE_SERVICE],
                             min_active=FLOOR, wait=False)
    the_backend = TimedBackend(state_file)
    barrier.wait()
    started = time.monotonic()
    try:
        member.run(the_backend, request)
        kind = "ok"
    except member.LBError as error:
        kind = error.error_type
    results[address] = (kind, time.monotonic() - started, the_backend.writes)


def race(racers, separate_locks, state_file):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(racers))
    manager = context.Manager()
    results = manager.dict()
    lock_root = tempfile.mkdtemp(prefix="gentle-lb-locks-", dir="/run")
    processes = []
    for address in racers:
        # Separate lock directories stand for runs from different controllers,
        # where no lock is shared and only the re-read after the write guards.
        lock_dir = os.path.join(lock_root, address if separate_locks else "shared")
        os.makedirs(lock_dir, exist_ok=True)
        processes.append(context.Process(target=_racer, args=(address, barrier, lock_dir, state_file, results)))
    with Sampler() as sampler:
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
        time.sleep(0.1)
    outcome = dict(results)
    manager.shutdown()
    return outcome, sampler


@pytest.mark.parametrize("racers", [RACERS[:3], RACERS], ids=["3-racers", "4-racers"])
def test_runs_sharing_a_lock_take_turns_and_never_cross_the_floor(director, tmp_path, racers):
    for _attempt in range(2):
        race_table(director)
        outcome, sampler = race(racers, separate_locks=False, state_file=str(tmp_path / "w.json"))
        ok = [a for a, (kind, _t, _w) in outcome.items() if kind == "ok"]
        refused = [a for a, (kind, _t, _w) in outcome.items() if kind == "GuardRefusedError"]
        assert len(ok) == 1 and len(refused) == len(racers) - 1, outcome
        assert len(sampler.samples) > 5
        # The lock serialises read -> write -> re-read: the floor is never crossed at all.
        assert sampler.below(FLOOR) == [], sampler.samples
        assert in_rotation() == FLOOR


@pytest.mark.parametrize("racers", [RACERS[:3], RACERS], ids=["3-racers", "4-racers"])
def test_runs_from_different_controllers_repair_a_crossed_floor_at_once(director, tmp_path, racers):
    dips = []
    for _attempt in range(3):
        race_table(director)
        outcome, sampler = race(racers, separate_locks=True, state_file=str(tmp_path / "w.json"))
        ok = [a for a, (kind, _t, _w) in outcome.items() if kind == "ok"]
        assert len(ok) >= 1, outcome
        assert all(kind in ("ok", "GuardRefusedError") for kind, _t, _w in outcome.values()), outcome
        # However the writes interleaved, the runs leave the floor held...
        assert in_rotation() >= FLOOR, outcome
        # ...and the service is below it only while a run that took a server
        # out has not yet put it back: every such sample overlaps one run's
        # window from its drain write to the end of its own undo.
        windows = [w for _kind, _t, writes in outcome.values() for w in repair_windows(writes)]
        uncovered = [(before, after) for before, after in sampler.below(FLOOR)
                     if not any(before <= end and after >= start for start, end in windows)]
        assert uncovered == [], (uncovered, windows, outcome)
        dips.append((sampler.longest_below(FLOOR), max([end - start for start, end in windows] or [0.0])))
    print("racers=%d per round, longest dip below the floor / longest write-to-undo: %s"
          % (len(racers), ", ".join("%.3f/%.3f s" % d for d in dips)))


# ---------------------------------------------------------------- the lock key


def lock_key_in(netns=None):
    code = ("import json\nfrom ansible_collections.gentle.lb.plugins.module_utils import ipvs, member\n"
            "key = ipvs.IPVSBackend(None).lock_key()\n"
            "print(json.dumps([key, member.BalancerLock.path_for(key)]))")
    argv = [sys.executable, "-c", code]
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_the_lock_is_per_network_namespace():
    """One IPVS table per network namespace, so one lock per namespace: runs
    in the same namespace (any process) share it, runs in another one do not."""
    first, second = lock_key_in(), lock_key_in()
    in_rs1, again_in_rs1 = lock_key_in("rs1"), lock_key_in("rs1")
    assert first == second
    assert first[0] == "ipvs netns:%d" % os.stat("/proc/1/ns/net").st_ino     # init's, the director's table
    assert in_rs1 == again_in_rs1
    assert in_rs1[0] == "ipvs netns:%d" % os.stat("/run/netns/rs1").st_ino
    assert in_rs1[0] != first[0] and in_rs1[1] != first[1]
    assert ipvs.IPVSBackend(None).lock_key() == first[0]
