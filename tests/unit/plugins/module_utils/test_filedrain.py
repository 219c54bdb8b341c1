# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drains through files, with the core unchanged: real files in a temporary
directory, a fake balancer view that notices them after a few polls, and a
fake clock (no real time spent)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.gentle.lb.plugins.module_utils import filedrain
from ansible_collections.gentle.lb.plugins.module_utils import member as core
from ansible_collections.gentle.lb.plugins.module_utils.member import Member, Request, Selector


class FakeClock(object):
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeView(core.Backend):
    """A balancer that probes files: a member whose file says out is marked
    out ``notice_polls`` reads later (HAProxy: health down; IPVS: weight 0),
    and in again as soon as its file is back.  ``sessions`` drain by one per read."""

    kind = "fake"
    container_label = "backend"
    member_label = "server"

    def __init__(self, members, is_out, notice_polls=2, ipvs=False):
        super(FakeView, self).__init__()
        self.members = dict((m.key, m) for m in members)
        self.is_out = is_out            # name -> callable() -> the file says out
        self.notice_polls = notice_polls
        self.ipvs = ipvs
        self.pending = {}
        self.reads = 0

    def lock_key(self):
        return None

    def read(self, containers):
        self.reads += 1
        result = []
        for key, m in sorted(self.members.items()):
            out = self.is_out.get(m.name, lambda: False)()
            if out:
                self.pending[key] = self.pending.get(key, 0) + 1
            else:
                self.pending.pop(key, None)
            noticed = out and self.pending[key] > self.notice_polls
            if m.sessions and noticed:
                m.sessions -= 1
            if self.ipvs:
                result.append(m.copy(weight=0 if noticed else 1, state="drained" if noticed else "present"))
            else:
                result.append(m.copy(health="down" if noticed else "up"))
        return result

    def apply(self, change, request):
        raise AssertionError("a view is never written to")


def request(state, names, min_active=1, **kwargs):
    return Request(state, [Selector(name=n) for n in names], min_active=min_active, **kwargs)


@pytest.fixture
def lab(tmp_path):
    """Three servers web1..web3, each with the page its check probes."""
    paths = {}
    for name in ("web1", "web2", "web3"):
        path = tmp_path / name
        path.write_text("OK\n")
        paths[name] = str(path)
    clock = FakeClock()
    switches = dict((n, filedrain.AsideSwitch(p)) for n, p in paths.items())
    members = [Member("app", n, weight=1, sessions=2 if n == "web1" else 0, health="up") for n in sorted(paths)]
    view = FakeView(members, dict((n, s.is_out) for n, s in switches.items()))

    def backend(names, notice_timeout=30.0):
        targets = [filedrain.Target(Selector(name=n), switches[n]) for n in names]
        return filedrain.HealthFileBackend(view, targets, notice_timeout=notice_timeout,
                                           clock=clock.clock, sleep=clock.sleep)
    return dict(paths=paths, switches=switches, view=view, clock=clock, backend=backend)


def run(lab, state, names, **kwargs):
    return core.run(lab["backend"](names), request(state, names, **kwargs), clock=lab["clock"].clock,
                    sleep=lab["clock"].sleep)


def test_drain_moves_the_file_and_returns_once_the_balancer_has_the_member_out(lab):
    result = run(lab, "drained", ["web1"])
    assert not os.path.exists(lab["paths"]["web1"])
    assert os.path.exists(lab["paths"]["web1"] + ".rolling_deploy")
    entry = result["members"][0]
    assert (entry["state_before"], entry["state"], entry["health"], entry["sessions"]) == \
        ("present", "drained", "down", 0)
    assert result["changed"] and result["reasserted"] == 0


def test_a_batch_is_guarded_together_and_refused_without_moving_a_file(lab):
    with pytest.raises(core.GuardRefusedError) as caught:
        run(lab, "drained", ["web1", "web2", "web3"], min_active=1)
    assert caught.value.error_type == "GuardRefusedError"
    guard = caught.value.result["guard"][0]
    assert (guard["active"], guard["needed"], guard["may_leave"]) == (3, 1, 2)
    assert all(os.path.exists(p) for p in lab["paths"].values())


def test_the_guard_of_a_later_call_sees_a_file_the_balancer_has_noticed(lab):
    """The first drain returns only once the view shows web1 out, so the
    second call's guard counts it as gone."""
    run(lab, "drained", ["web1"], min_active=2)
    with pytest.raises(core.GuardRefusedError):
        run(lab, "drained", ["web2"], min_active=2)
    assert os.path.exists(lab["paths"]["web2"])


def test_a_file_the_balancer_never_notices_is_put_back(lab):
    lab["view"].notice_polls = 10 ** 6
    with pytest.raises(filedrain.NoticeTimeoutError) as caught:
        run(lab, "drained", ["web2", "web3"], min_active=0)
    assert "nothing is left changed" in caught.value.msg
    assert all(os.path.exists(p) for p in lab["paths"].values())


def test_restore_puts_the_file_back_and_waits_until_usable(lab):
    run(lab, "drained", ["web2"])
    result = run(lab, "present", ["web2"])
    assert os.path.exists(lab["paths"]["web2"])
    assert result["members"][0]["state"] == "present" and result["members"][0]["health"] == "up"


def test_a_file_moved_back_during_the_wait_is_moved_again(lab):
    """The core's re-assertion, unchanged: somebody puts web1's page back while
    its two sessions drain; the wait finds the state lost and drains again."""
    switch = lab["switches"]["web1"]
    original = lab["view"].read
    meddled = []

    def meddling(containers):
        # Once web1 is out and one of its two sessions has ended.
        if not meddled and lab["view"].members[("app", "web1")].sessions == 1:
            meddled.append(switch.put_back())
        return original(containers)

    lab["view"].read = meddling
    lab["view"].poll = meddling
    result = run(lab, "drained", ["web1"], min_active=0)
    assert result["reasserted"] == 1
    assert not os.path.exists(lab["paths"]["web1"])


def test_present_refuses_a_member_the_balancer_itself_holds_out(lab):
    held = lab["view"].members[("app", "web3")]
    lab["view"].members[("app", "web3")] = held.copy(state="drained")
    with pytest.raises(core.CommandError) as caught:
        # the file is in place, so the member reads as drained through the balancer's own admin state
        run(lab, "present", ["web3"])
    assert "on fake itself, not through its file" in caught.value.msg


def test_keepalived_weight_zero_is_out_and_the_weight_is_keepalived_s(tmp_path):
    clock = FakeClock()
    switch = filedrain.MaintenanceSwitch(str(tmp_path / "web1"), [str(tmp_path / "10.0.0.1")])
    members = [Member("tcp:10.0.0.100:80", "10.0.0.%d:80" % n, "10.0.0.%d" % n, 80, weight=1, health="unknown")
               for n in (1, 2)]
    view = FakeView(members, {"10.0.0.1:80": switch.is_out}, notice_polls=1, ipvs=True)
    targets = [filedrain.Target(Selector(address="10.0.0.1"), switch)]

    def go(state):
        backend = filedrain.KeepalivedBackend(view, targets, clock=clock.clock, sleep=clock.sleep)
        return core.run(backend, Request(state, [Selector(address="10.0.0.1")]), clock=clock.clock, sleep=clock.sleep)

    drained = go("drained")
    assert os.path.exists(str(tmp_path / "web1"))
    assert (drained["members"][0]["state"], drained["members"][0]["weight"]) == ("drained", None)
    # Another name of the same real server drains it too: the restore refuses
    # to pretend it is back.
    (tmp_path / "10.0.0.1").write_text("")
    with pytest.raises(core.CommandError) as caught:
        go("present")
    assert "also drains this real server" in caught.value.msg
    os.unlink(str(tmp_path / "10.0.0.1"))
    restored = go("present")
    assert not os.path.exists(str(tmp_path / "web1"))
    assert (restored["members"][0]["state"], restored["members"][0]["health"]) == ("present", "up")


def test_keepalived_that_never_reacts_is_put_back_and_its_lost_checker_named(tmp_path):
    """keepalived before 2.3 can lose a MISC_CHECK for good (its script timed
    out as it exited); the error says where to look, the file is put back."""
    clock = FakeClock()
    switch = filedrain.MaintenanceSwitch(str(tmp_path / "web1"), [])
    members = [Member("tcp:10.0.0.100:80", "10.0.0.%d:80" % n, "10.0.0.%d" % n, 80, weight=1, health="unknown")
               for n in (1, 2)]
    view = FakeView(members, {"10.0.0.1:80": switch.is_out}, notice_polls=10 ** 6, ipvs=True)
    backend = filedrain.KeepalivedBackend(view, [filedrain.Target(Selector(address="10.0.0.1"), switch)],
                                          notice_timeout=5, clock=clock.clock, sleep=clock.sleep)
    with pytest.raises(filedrain.NoticeTimeoutError) as caught:
        core.run(backend, Request("drained", [Selector(address="10.0.0.1")], min_active=0),
                 clock=clock.clock, sleep=clock.sleep)
    assert "child (PID n) lost" in caught.value.msg and "only a restart" in caught.value.msg
    assert not os.path.exists(str(tmp_path / "web1"))


def test_computed_wait_counts_from_the_move_and_never_again(tmp_path):
    path = tmp_path / "page"
    path.write_text("OK\n")
    switch = filedrain.AsideSwitch(str(path))
    switch.take_out()
    moved = switch.changed_at()
    slept = []
    assert filedrain.computed_wait([switch], 6.0, clock=lambda: moved + 1.0, sleep=slept.append) == 5.0
    assert slept == [5.0]
    assert filedrain.computed_wait([switch], 6.0, clock=lambda: moved + 7.0, sleep=slept.append) == 0.0
