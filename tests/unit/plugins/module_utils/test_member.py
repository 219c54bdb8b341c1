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


class FakeBackend(core.Backend):
    """A balancer whose drained members lose ``drain_rate`` sessions per second
    of fake time, and whose restored members turn usable after ``up_after`` s.
    ``on_poll(backend, poll_number)`` lets a test change the balancer behind the
    core's back (a reload, an operator, an agent)."""

    kind = "fake"
    container_label = "backend"
    member_label = "server"
    can_force = True

    def __init__(self, members, clock, drain_rate=1.0, up_after=0.0, can_add=False,
                 removes_member=False, fail_on=None, on_poll=None, before_write=None):
        super(FakeBackend, self).__init__()
        self.on_poll = on_poll
        self.before_write = before_write
        self.polls = 0
        self.closed = False
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

    def poll(self, containers):
        self.polls += 1
        if self.on_poll is not None:
            self.on_poll(self, self.polls)
        return self.read(containers)

    def set(self, key, state, weight=None):
        """Somebody else's write."""
        m = self.members[key]
        m.state = state
        if weight is not None:
            m.weight = weight

    def close(self):
        self.closed = True

    def apply(self, change, request):
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook(self)
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
    kwargs.setdefault("poll_interval", 0.5)
    request = Request(selectors=kwargs.pop("selectors", [selector]), **kwargs)
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


def test_absent_of_a_missing_member_is_ok_unchanged_where_members_are_deleted():
    backend, clock = lab(removes_member=True)
    result = run(backend, clock, state="absent", selector=Selector(name="web9"), containers=["app"])
    assert result["changed"] is False and result["members"] == []


def test_absent_of_a_missing_member_is_an_error_where_members_are_never_deleted():
    # HAProxy never deletes a configured server: a miss is a typo, not "already absent".
    backend, clock = lab()
    with pytest.raises(core.NotFoundError) as error:
        run(backend, clock, state="absent", selector=Selector(name="wbe1"))
    assert "server wbe1: not found in any backend (searched api, app)" in error.value.msg
    assert error.value.error_type == "NotFoundError"
    assert backend.writes == []


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
    assert "the remaining sessions were ended" in result["msg"]
    assert "still open" not in result["msg"]
    assert all(m["sessions"] == 0 for m in result["members"])


def test_force_that_ends_nothing_says_what_is_still_open():
    backend, clock = lab(drain_rate=0.0)
    backend.force = lambda members: backend.forced.extend(m.key for m in members)
    result = run(backend, clock, state="absent", wait_timeout=1, on_timeout="force")
    assert "still open" in result["msg"] and "app/web1 3 sessions" in result["msg"]
    assert "goal reached" not in result["msg"]


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


# ---------------------------------------------------------------- several members per call


def four_ready(**kwargs):
    members = [Member("app", "web%d" % i, "10.0.0.%d" % i, 80, weight=10, sessions=i - 1, health="up")
               for i in range(1, 5)]
    return lab(members=members, **kwargs)


def test_several_members_are_planned_guarded_and_waited_on_together():
    backend, clock = four_ready()
    result = run(backend, clock, state="drained", min_active=2,
                 selectors=[Selector(name="web2"), Selector(name="web3")])
    assert sorted(w[0][1] for w in backend.writes) == ["web2", "web3"]
    # web2 had 1 session, web3 2: together they take as long as the slower one.
    assert 2.0 <= result["waited"] < 2.6
    assert [m["name"] for m in result["members"]] == ["web2", "web3"]
    assert result["msg"].startswith("server web2, web3 in backend app: drained, goal reached")


def test_the_guard_counts_every_member_of_the_call_together():
    backend, clock = four_ready()
    # Each alone would leave 3 of 4; together 1 of 4, below 3.
    with pytest.raises(core.GuardRefusedError) as error:
        run(backend, clock, state="drained", min_active=3,
            selectors=[Selector(name="web1"), Selector(name="web2"), Selector(name="web3")])
    assert backend.writes == []
    assert "taking web1, web2, web3 out would leave 1 of 4" in error.value.msg
    view = error.value.result["guard"]
    assert view == [dict(container="app", members=4, active=4, needed=3,
                         leaving=["web1", "web2", "web3"], may_leave=1)]


def test_one_missing_member_of_several_fails_before_writing_and_names_it():
    backend, clock = four_ready()
    with pytest.raises(core.NotFoundError) as error:
        run(backend, clock, state="drained", selectors=[Selector(name="web1"), Selector(name="web9")])
    assert "server web9: not found" in error.value.msg and "web1" not in error.value.msg.split(":")[0]
    assert backend.writes == []


# ---------------------------------------------------------------- a wait is for a state


def test_a_drain_undone_mid_wait_is_reasserted_and_counted():
    def operator_enables_web1(backend, poll):
        if poll == 3:
            backend.set(("app", "web1"), "present")     # a reload, or someone's 'enable server'
    backend, clock = four_ready(on_poll=operator_enables_web1)
    backend.identity = lambda: "pid %d" % (1 if backend.polls < 3 else 2)
    backend.explain_drift = lambda before, now: "reloaded (%s -> %s)" % (before, now) if before != now else None
    backend.members[("app", "web1")].sessions = 2
    result = run(backend, clock, state="drained")
    assert [w[1] for w in backend.writes] == ["drained", "drained"]
    assert result["reasserted"] == 1
    assert result["members"][0]["state"] == "drained"
    assert any("found present weight 10 while waiting for drained (reloaded (pid 1 -> pid 2)); "
               "set drained again" in w for w in result["warnings"]), result["warnings"]


def test_the_goal_is_never_reported_while_the_member_is_out_of_its_state():
    # Sessions are 0 all along; only the admin state says whether it is drained.
    seen = []

    def flip(backend, poll):
        seen.append(backend.members[("app", "web1")].state)
        if poll in (1, 2):
            backend.set(("app", "web1"), "present")
    backend, clock = four_ready(on_poll=flip)
    result = run(backend, clock, state="drained")
    assert result["reasserted"] == 2
    assert backend.members[("app", "web1")].state == "drained"
    assert "goal reached" in result["msg"] and result["members"][0]["state"] == "drained"


def test_with_reassert_off_a_change_by_someone_else_fails_at_once():
    def operator(backend, poll):
        if poll == 2:
            backend.set(("app", "web1"), "present")
    backend, clock = four_ready(drain_rate=0.0, on_poll=operator)
    backend.members[("app", "web1")].sessions = 2
    with pytest.raises(core.StateLostError) as error:
        run(backend, clock, state="drained", reassert=False, wait_timeout=60)
    assert error.value.error_type == "StateLostError"
    assert "web1: left drained during the wait (now app/web1 present weight 10)" in error.value.msg
    assert "reassert is off" in error.value.msg
    assert clock.now < 5
    assert error.value.result["members"][0]["state"] == "present"


def test_a_reassertion_that_would_cross_the_floor_is_refused():
    def operator(backend, poll):
        if poll == 2:
            backend.set(("app", "web1"), "present")
            backend.set(("app", "web2"), "drained")   # another run drained web2 meanwhile
            backend.set(("app", "web3"), "drained")
    backend, clock = four_ready(drain_rate=0.0, on_poll=operator)
    backend.members[("app", "web1")].sessions = 2
    with pytest.raises(core.GuardRefusedError) as error:
        run(backend, clock, state="drained", min_active=2, wait_timeout=60)
    assert "while putting back web1" in error.value.msg
    assert backend.members[("app", "web1")].state == "present"


def test_present_waits_for_the_state_too():
    def operator(backend, poll):
        if poll == 1:
            backend.set(("app", "web1"), "drained")
    backend, clock = lab(on_poll=operator, members=[
        Member("app", "web1", state="drained", weight=1, health="up"),
        Member("app", "web2", weight=1, health="up")])
    result = run(backend, clock, state="present")
    assert result["reasserted"] == 1 and backend.members[("app", "web1")].state == "present"


def test_a_member_deleted_during_a_drain_fails_clearly_where_members_are_deleted():
    def operator(backend, poll):
        if poll == 2:
            del backend.members[("app", "web1")]
    backend, clock = four_ready(drain_rate=0.0, removes_member=True, on_poll=operator)
    backend.members[("app", "web1")].sessions = 2
    with pytest.raises(core.StateLostError) as error:
        run(backend, clock, state="drained")
    assert "deleted by someone else" in error.value.msg


# ---------------------------------------------------------------- present and weight 0


@pytest.mark.parametrize("weight", [0, "0%"])
def test_present_that_would_leave_weight_0_is_refused(weight):
    backend, clock = lab()
    backend.target_weight = lambda member, requested: 0 if requested in (0, "0%") else requested
    with pytest.raises(core.InvalidInputError) as error:
        run(backend, clock, state="present", weight=weight, containers=["app"])
    assert "would leave it at weight 0" in error.value.msg and "state=drained" in error.value.msg
    assert backend.writes == []


# ---------------------------------------------------------------- concurrency


def test_a_run_that_crossed_the_floor_with_another_undoes_its_write_and_then_yields():
    # Between our read and our write, another run drains web2 (both plans saw
    # 4 of 4 in rotation; together they leave 2, below min_active 3).
    def other_run(backend):
        backend.set(("app", "web2"), "drained")
    backend, clock = four_ready(before_write=other_run)
    with pytest.raises(core.GuardRefusedError) as error:
        run(backend, clock, state="drained", min_active=3)
    # Ours was written, seen to cross the floor, undone; the retry's plan refuses.
    assert [w[:2] for w in backend.writes] == [(("app", "web1"), "drained"), (("app", "web1"), "present")]
    assert backend.members[("app", "web1")].state == "present"
    assert backend.members[("app", "web2")].state == "drained"
    assert "would leave 2 of 4" in error.value.msg


def test_a_collision_that_clears_is_retried_and_succeeds():
    # The other run also undid its write (it saw the same crossing): ours goes through on retry.
    def other_run(backend):
        backend.set(("app", "web2"), "drained")
        original = backend.apply

        def apply_then_other_undoes(change, request):
            original(change, request)
            if change.state == "present":
                backend.set(("app", "web2"), "present")
                backend.apply = original
        backend.apply = apply_then_other_undoes
    backend, clock = four_ready(before_write=other_run)
    result = run(backend, clock, state="drained", min_active=3)
    assert result["changed"] is True and backend.members[("app", "web1")].state == "drained"
    assert [w[1] for w in backend.writes] == ["drained", "present", "drained"]


def test_the_balancer_lock_serialises_runs_and_gives_up_on_a_stuck_holder(tmp_path, monkeypatch):
    monkeypatch.setenv(core.LOCK_DIR_ENV, str(tmp_path))
    clock = FakeClock()
    with core.BalancerLock("haproxy:/run/haproxy.sock") as first:
        assert first.fd is not None and first.warning is None
        with core.BalancerLock("haproxy:/run/haproxy.sock", clock=clock.clock, sleep=clock.sleep,
                               timeout=1.0) as second:
            assert second.fd is None and "still held by another run after 1s" in second.warning
        with core.BalancerLock("haproxy:/run/other.sock") as other:
            assert other.fd is not None      # another balancer: its own lock
    with core.BalancerLock("haproxy:/run/haproxy.sock", clock=clock.clock, sleep=clock.sleep,
                           timeout=1.0) as again:
        assert again.fd is not None and again.warning is None


def test_the_lock_refuses_a_planted_symlink(tmp_path, monkeypatch):
    monkeypatch.setenv(core.LOCK_DIR_ENV, str(tmp_path))
    path = core.BalancerLock.path_for("haproxy:/x")
    (tmp_path / "target").write_text("")
    import os
    os.symlink(str(tmp_path / "target"), path)
    with core.BalancerLock("haproxy:/x") as lock:
        assert lock.fd is None and "cannot be opened" in lock.warning


# ---------------------------------------------------------------- the contract


def test_the_backend_is_closed_and_its_warnings_reach_the_result():
    backend, clock = lab()
    backend.warn("one remark")
    backend.warn("one remark")
    result = run(backend, clock, state="drained")
    assert backend.closed and result["warnings"] == ["one remark"]
    backend, clock = lab()
    backend.warn("said before failing")
    with pytest.raises(core.NotFoundError) as error:
        run(backend, clock, state="drained", selector=Selector(name="nope"))
    assert backend.closed and error.value.result["warnings"] == ["said before failing"]


def test_force_on_a_balancer_that_cannot_is_refused_before_any_io():
    backend, clock = lab()
    backend.can_force = False
    with pytest.raises(core.InvalidInputError):
        run(backend, clock, state="drained", on_timeout="force")
    assert backend.reads == 0


def test_the_backend_default_poll_interval_is_used_when_none_is_given():
    backend, clock = lab(drain_rate=0.1, members=[
        Member("app", "web1", weight=1, sessions=1, health="up"), Member("app", "web2", weight=1, health="up")])
    backend.default_poll_interval = 0.2
    run(backend, clock, state="drained", poll_interval=None)
    assert max(clock.sleeps) == pytest.approx(0.2)


def test_every_error_has_its_class_name_as_error_type():
    for cls in (core.NotFoundError, core.GuardRefusedError, core.WaitTimeoutError, core.StateLostError,
                core.InvalidInputError, core.UnreachableError):
        assert cls("x").error_type == cls.__name__
