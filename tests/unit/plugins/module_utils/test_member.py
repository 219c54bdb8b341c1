# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The core against a fake balancer and a fake clock: planning, the guard,
waiting, timeouts and results, with no real time spent."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.gentle.lb.plugins.module_utils import member as core
from ansible_collections.gentle.lb.plugins.module_utils.member import Member, Request, Selector


class FakeClock(object):
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class FakeBackend(object):
    """A balancer whose drained members lose ``drain_rate`` sessions per second
    of fake time, and whose restored members turn usable after ``up_after`` s."""

    kind = "fake"
    container_label = "backend"
    member_label = "server"

    def __init__(self, members, clock, drain_rate=1.0, up_after=0.0, can_add=False,
                 removes_member=False, fail_on=None):
        self.members = dict((m.key, m) for m in members)
        self.clock = clock
        self.drain_rate = drain_rate
        self.up_after = up_after
        self.can_add = can_add
        self.removes_member = removes_member
        self.fail_on = fail_on
        self.writes = []
        self.reads = 0
        self.forced = []
        self._drained_at = {}
        self._restored_at = {}

    def read(self, containers):
        self.reads += 1
        known = set(m.container for m in self.members.values())
        for container in containers or []:
            if container not in known:
                raise core.NotFoundError("backend %s: no such backend" % container)
        result = []
        for key, m in sorted(self.members.items()):
            if containers and m.container not in containers:
                continue
            self._age(key, m)
            result.append(Member(m.container, m.name, m.address, m.port, m.state, m.weight,
                                 m.sessions, m.health, m.backup))
        return result

    def _age(self, key, m):
        if key in self._drained_at and m.state != "present":
            elapsed = self.clock.now - self._drained_at[key][0]
            m.sessions = max(0, self._drained_at[key][1] - int(elapsed * self.drain_rate))
        if key in self._restored_at and self.clock.now - self._restored_at[key] >= self.up_after:
            m.health = "up"

    def apply(self, change, request):
        if self.fail_on and change.member.name == self.fail_on:
            raise core.CommandError("server %s: refused" % change.member.name)
        self.writes.append((change.member.key, change.state, change.weight, change.add))
        key = change.member.key
        if change.state == "absent" and self.removes_member:
            del self.members[key]
            return
        m = self.members.setdefault(key, change.member)
        m.state = change.state
        if change.weight is not None:
            m.weight = change.weight
        if change.state in ("drained", "absent"):
            self._drained_at[key] = (self.clock.now, m.sessions)
        else:
            self._drained_at.pop(key, None)
            m.health = "down"
            self._restored_at[key] = self.clock.now

    def new_member(self, container, selector, request):
        if not self.can_add:
            return None
        return Member(container, selector.name, selector.address, selector.port, state="absent",
                      weight=None, health="down")

    def force(self, members):
        self.forced.extend(m.key for m in members)
        for m in members:
            if m.key in self.members:
                self.members[m.key].sessions = 0
                self._drained_at.pop(m.key, None)


def lab(**kwargs):
    clock = FakeClock()
    members = kwargs.pop("members", None) or [
        Member("app", "web1", "10.0.0.1", 80, weight=10, sessions=3, health="up"),
        Member("app", "web2", "10.0.0.2", 80, weight=10, sessions=0, health="up"),
        Member("app", "web3", "10.0.0.3", 80, weight=10, sessions=0, health="up"),
        Member("api", "web1", "10.0.0.1", 8080, weight=5, sessions=2, health="up"),
        Member("api", "api1", "10.0.0.9", 8080, weight=5, sessions=0, health="up"),
    ]
    return FakeBackend(members, clock, **kwargs), clock


def run(backend, clock, check_mode=False, **kwargs):
    selector = kwargs.pop("selector", Selector(name="web1"))
    request = Request(selector=selector, **kwargs)
    return core.run(backend, request, check_mode=check_mode, clock=clock.clock, sleep=clock.sleep)


def test_drain_everywhere_waits_for_slowest_container_not_the_sum():
    backend, clock = lab(drain_rate=1.0)
    result = run(backend, clock, state="drained")
    assert result["changed"] is True
    assert sorted(w[0] for w in backend.writes) == [("api", "web1"), ("app", "web1")]
    # app/web1 had 3 sessions, api/web1 had 2: draining both at 1/s takes ~3 s, not 5.
    assert 3.0 <= result["waited"] < 3.6
    assert all(m["state"] == "drained" and m["sessions"] == 0 for m in result["members"])
    assert {m["state_before"] for m in result["members"]} == {"present"}


def test_second_run_is_unchanged_but_still_waits():
    backend, clock = lab()
    run(backend, clock, state="drained")
    backend.writes = []
    backend.members[("app", "web1")].sessions = 2          # a persistent client came back
    backend._drained_at[("app", "web1")] = (clock.now, 2)
    result = run(backend, clock, state="drained")
    assert result["changed"] is False and backend.writes == []
    assert result["waited"] >= 2.0


def test_poll_starts_fast_and_backs_off_to_the_cap():
    backend, clock = lab(drain_rate=0.25)
    run(backend, clock, state="drained", poll_interval=0.5)
    assert clock.sleeps[0] == pytest.approx(0.05)
    assert max(clock.sleeps) == pytest.approx(0.5)
    assert clock.sleeps == sorted(clock.sleeps)


def test_goal_noticed_within_a_fraction_of_a_second_after_long_drain():
    backend, clock = lab(drain_rate=0.1, members=[
        Member("app", "web1", weight=1, sessions=1, health="up"),
        Member("app", "web2", weight=1, health="up")])
    result = run(backend, clock, state="drained", poll_interval=0.5)
    assert 10.0 <= result["waited"] <= 10.5


def test_check_mode_writes_nothing_and_reports_the_plan():
    backend, clock = lab()
    result = run(backend, clock, check_mode=True, state="drained")
    assert backend.writes == [] and clock.sleeps == []
    assert result["changed"] is True
    assert all(m["state"] == "drained" for m in result["members"])
    assert result["diff"]["before"]["app/web1"] == {"state": "present", "weight": 10}
    assert result["diff"]["after"]["app/web1"] == {"state": "drained", "weight": 10}


def test_container_narrows_scope():
    backend, clock = lab()
    result = run(backend, clock, state="drained", containers=["api"])
    assert [m["container"] for m in result["members"]] == ["api"]
    assert backend.writes == [(("api", "web1"), "drained", None, False)]


def test_select_by_address_and_port():
    backend, clock = lab()
    result = run(backend, clock, state="drained", selector=Selector(address="10.0.0.1", port=8080))
    assert [(m["container"], m["name"]) for m in result["members"]] == [("api", "web1")]


@pytest.mark.parametrize("state", ["present", "drained"])
def test_zero_matches_is_an_error_before_writing(state):
    backend, clock = lab()
    with pytest.raises(core.NotFoundError) as error:
        run(backend, clock, state=state, selector=Selector(name="web9"))
    assert "server web9: not found in any backend" in error.value.msg
    assert backend.writes == []


def test_absent_of_a_missing_member_is_ok_unchanged():
    backend, clock = lab()
    result = run(backend, clock, state="absent", selector=Selector(name="web9"), containers=["app"])
    assert result["changed"] is False and result["members"] == []


def test_unknown_container_is_an_error_even_for_absent():
    backend, clock = lab()
    with pytest.raises(core.NotFoundError):
        run(backend, clock, state="absent", containers=["nope"])


def test_present_adds_only_where_the_container_is_named_and_backend_can():
    backend, clock = lab(can_add=True, members=[Member("app", "web2", weight=1, health="up")])
    result = run(backend, clock, state="present", containers=["app"], weight=4,
                 selector=Selector(name="web1", address="10.0.0.1", port=80))
    assert backend.writes == [(("app", "web1"), "present", 4, True)]
    assert result["members"][0]["state_before"] == "absent"
    with pytest.raises(core.NotFoundError):
        run(backend, clock, state="present", selector=Selector(name="web7"))


def test_present_without_add_support_names_the_container():
    backend, clock = lab()
    with pytest.raises(core.NotFoundError) as error:
        run(backend, clock, state="present", containers=["api"], selector=Selector(name="web2"))
    assert "backend api" in error.value.msg


def test_guard_refuses_the_last_member_before_writing():
    backend, clock = lab(members=[Member("app", "web1", weight=1, health="up"),
                                  Member("app", "web2", weight=1, health="down")])
    with pytest.raises(core.GuardRefusedError) as error:
        run(backend, clock, state="drained")
    assert "min_active=1" in error.value.msg and "0 of 2" in error.value.msg
    assert backend.writes == []
    result = run(backend, clock, state="drained", min_active=0)
    assert result["changed"] is True


def test_guard_percentage_rounds_up_and_skips_backups_and_weight_zero():
    members = [Member("app", "web%d" % i, weight=1, health="up") for i in range(1, 5)]
    members.append(Member("app", "spare", weight=1, health="up", backup=True))
    members.append(Member("app", "zero", weight=0, health="up"))
    backend, clock = lab(members=members)
    # 6 members, 50% -> 3 needed; web2..web4 remain (3): allowed.
    run(backend, clock, state="drained", min_active="50%")
    # now web2 out: web3, web4 remain (2) < 3: refused.
    with pytest.raises(core.GuardRefusedError):
        run(backend, clock, state="drained", min_active="50%", selector=Selector(name="web2"))


def test_guard_ignores_an_already_drained_member():
    backend, clock = lab(members=[Member("app", "web1", state="drained", weight=1, health="up"),
                                  Member("app", "web2", state="drained", weight=1, health="up")])
    result = run(backend, clock, state="drained")
    assert result["changed"] is False


@pytest.mark.parametrize("value", ["-1", "abc", "150%"])
def test_bad_min_active(value):
    with pytest.raises(core.InvalidInputError):
        core.parse_min_active(value)


def test_timeout_fails_leaves_drained_and_says_what_is_open():
    backend, clock = lab(drain_rate=0.0)
    with pytest.raises(core.WaitTimeoutError) as error:
        run(backend, clock, state="drained", wait_timeout=5)
    assert "app/web1 3 sessions" in error.value.msg and "api/web1 2 sessions" in error.value.msg
    assert "on_timeout: force" in error.value.msg
    assert backend.members[("app", "web1")].state == "drained"
    assert error.value.result["changed"] is True
    assert 5.0 <= clock.now < 5.6


def test_timeout_continue_warns():
    backend, clock = lab(drain_rate=0.0)
    result = run(backend, clock, state="drained", wait_timeout=1, on_timeout="continue")
    assert result["warnings"] and "continuing" in result["warnings"][0]


def test_timeout_force_ends_sessions():
    backend, clock = lab(drain_rate=0.0)
    result = run(backend, clock, state="absent", wait_timeout=1, on_timeout="force")
    assert sorted(backend.forced) == [("api", "web1"), ("app", "web1")]
    assert "forced" in result["msg"]
    assert all(m["sessions"] == 0 for m in result["members"])


def test_present_waits_until_usable():
    backend, clock = lab(up_after=2.0, members=[Member("app", "web1", state="drained", weight=1, health="up"),
                                                Member("app", "web2", weight=1, health="up")])
    result = run(backend, clock, state="present")
    assert 2.0 <= result["waited"] < 2.6
    assert result["members"][0]["health"] == "up"


def test_present_times_out_on_a_down_member():
    backend, clock = lab(up_after=100.0, members=[Member("app", "web1", state="absent", weight=1, health="up"),
                                                  Member("app", "web2", weight=1, health="up")])
    with pytest.raises(core.WaitTimeoutError) as error:
        run(backend, clock, state="present", wait_timeout=3, on_timeout="force")
    assert "health down" in error.value.msg


def test_present_weight_change_is_a_change_and_rerun_is_not():
    backend, clock = lab()
    result = run(backend, clock, state="present", weight=20, containers=["app"])
    assert result["changed"] and backend.writes == [(("app", "web1"), "present", 20, False)]
    assert run(backend, clock, state="present", weight=20, containers=["app"])["changed"] is False
    assert run(backend, clock, state="present", containers=["app"])["changed"] is False


def test_sessions_never_make_a_change():
    backend, clock = lab()
    backend.members[("app", "web1")].sessions = 99
    assert run(backend, clock, state="present", wait=False)["changed"] is False


def test_removing_backend_drains_waits_then_deletes():
    backend, clock = lab(removes_member=True, drain_rate=1.0)
    result = run(backend, clock, state="absent", containers=["app"])
    assert [w[1] for w in backend.writes] == ["drained", "absent"]
    assert ("app", "web1") not in backend.members
    assert result["waited"] >= 3.0 and result["members"][0]["state"] == "absent"


def test_removing_backend_timeout_leaves_it_drained():
    backend, clock = lab(removes_member=True, drain_rate=0.0)
    with pytest.raises(core.WaitTimeoutError):
        run(backend, clock, state="absent", containers=["app"], wait_timeout=2)
    assert backend.members[("app", "web1")].state == "drained"


def test_failed_write_reports_what_was_already_written():
    backend, clock = lab(fail_on="web1", members=[Member("app", "web1", weight=1, health="up"),
                                                  Member("app", "web2", weight=1, health="up")])
    with pytest.raises(core.CommandError) as error:
        run(backend, clock, state="drained")
    assert error.value.result["changed"] is False


def test_no_wait_returns_at_once():
    backend, clock = lab(drain_rate=0.0)
    result = run(backend, clock, state="drained", wait=False)
    assert result["waited"] == 0 and clock.sleeps == []
    assert result["members"][0]["sessions"] > 0


def test_describe_lists_members_without_changing():
    backend, clock = lab()
    info = core.describe(backend, ["app"])
    assert [m["name"] for m in info["members"]] == ["web1", "web2", "web3"]
    assert info["changed"] is False and backend.writes == []


def test_poll_policy_is_capped_and_restartable():
    policy = core.PollPolicy(cap=0.3)
    values = [interval for interval, _index in zip(policy.intervals(), range(10))]
    assert values[0] == 0.05 and values[-1] == 0.3
    # A second wait starts fast again: the policy itself holds no progress.
    assert next(policy.intervals()) == 0.05
