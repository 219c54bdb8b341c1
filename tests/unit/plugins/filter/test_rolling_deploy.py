# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rolling_deploy role's batch planning (plugins/filter/rolling_deploy.py):
one call per balancer for a batch, results read back per host by error_type,
and the split of a refused round - against hand-written results of the shape
gentle.lb.member returns."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os

import pytest
import yaml

from ansible_collections.gentle.lb.plugins.filter import rolling_deploy as planner

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
with open(os.path.join(REPO, "roles", "rolling_deploy", "vars", "main.yml")) as _handle:
    TYPES = yaml.safe_load(_handle)["_rolling_deploy_types"]
SETTINGS = dict(drain_timeout=60, restore_timeout=30, drain_threshold=0, drain_on_timeout="fail", min_active=2)


def haproxy(host, backend="app", **extra):
    return dict(dict(type="haproxy", delegate_to="lb1", backend=backend, server=host, socket="/run/ha.sock"), **extra)


def hostvars(bindings):
    return dict((h, {"_rolling_deploy_me": {"bindings": b, "settings": SETTINGS}}) for h, b in bindings.items())


def registered(calls, answers):
    """A run_once loop's register: one result per call, ``answers`` by index."""
    results = []
    for index, call in enumerate(calls):
        result = dict(item=call, changed=True, call_failed=False, started=100.0, elapsed=1.5, waited=0.5,
                      members=[dict(container="app", name=h, state="drained", sessions=0, health="up")
                               for h in call["hosts"]])
        result.update(answers.get(index, {}))
        results.append(result)
    return dict(results=results)


def test_hosts_on_the_same_balancer_share_one_call():
    hv = hostvars({"web1": [haproxy("web1")], "web2": [haproxy("web2")], "web3": [haproxy("web3", backend="api")]})
    calls = planner.rolling_deploy_calls(["web1", "web2", "web3"], hv, "drained", TYPES)
    assert [c["hosts"] for c in calls] == [["web1", "web2"], ["web3"]]
    first = calls[0]["options"]
    assert first["server"] == ["web1", "web2"] and first["state"] == "drained"
    assert (first["wait_timeout"], first["min_active"], first["on_timeout"]) == (60, 2, "fail")
    # Two balancers: every call writes first, the role's wait pass waits on all.
    assert [c["options"]["wait"] for c in calls] == [False, False]
    assert calls[0]["label"] == "haproxy drained app: web1, web2 via lb1"
    assert "socket" not in calls[0]["label"]


def test_one_balancer_waits_in_its_own_call_and_restores_with_the_weight():
    hv = hostvars({"web1": [haproxy("web1", weight=5)], "web2": [haproxy("web2", weight=5)]})
    calls = planner.rolling_deploy_calls(["web1", "web2"], hv, "present", TYPES)
    assert len(calls) == 1
    options = calls[0]["options"]
    assert (options["wait"], options["weight"], options["wait_timeout"], options["on_timeout"]) == (True, 5, 30, "fail")
    drained = planner.rolling_deploy_calls(["web1", "web2"], hv, "drained", TYPES)
    assert "weight" not in drained[0]["options"]


def test_a_delegate_list_is_the_same_binding_on_each_director_and_nested_members_are_lists():
    vrrp = dict(type="lvs_director", delegate_to=["d1", "d2"], address="10.0.0.1", name="web1")
    files = dict(type="health_file", path="/srv/web1/ok", info=dict(server="web1", socket="tcp://lb:9999"))
    hv = hostvars({"web1": [vrrp, files],
                   "web2": [dict(vrrp, address="10.0.0.2", name="web2"),
                            dict(files, path="/srv/web2/ok", info=dict(server="web2", socket="tcp://lb:9999"))]})
    calls = planner.rolling_deploy_calls(["web1", "web2"], hv, "drained", TYPES)
    directors = [c for c in calls if c["type"] == "lvs_director"]
    assert [c["delegate_to"] for c in directors] == ["d1", "d2"]
    assert directors[0]["options"]["address"] == ["10.0.0.1", "10.0.0.2"]
    health = [c for c in calls if c["type"] == "health_file"]
    # health_file runs where the file is: the node itself, one call each.
    assert [(c["delegate_to"], c["options"]["path"], c["options"]["info"]) for c in health] == [
        ("web1", ["/srv/web1/ok"], {"server": ["web1"], "socket": "tcp://lb:9999"}),
        ("web2", ["/srv/web2/ok"], {"server": ["web2"], "socket": "tcp://lb:9999"})]


def test_results_are_read_per_host_by_error_type():
    hv = hostvars({h: [haproxy(h)] for h in ("web1", "web2", "web3")})
    calls = planner.rolling_deploy_calls(["web1", "web2", "web3"], hv, "drained", TYPES)
    register = registered(calls, {0: dict(
        call_failed=True, failed=False, error_type="WaitTimeoutError", msg="server web2: not drained",
        members=[dict(container="app", name="web1", state="drained", sessions=0, health="up"),
                 dict(container="app", name="web2", state="drained", sessions=3, health="up"),
                 dict(container="app", name="web3", state="drained", sessions=0, health="up")])})
    outcome = planner.rolling_deploy_outcome([register], "drained", 1)
    assert [h for h in sorted(outcome) if outcome[h]["ok"]] == ["web1", "web3"]
    assert outcome["web2"]["error_type"] == "WaitTimeoutError" and not outcome["web2"]["refused"]
    assert planner.rolling_deploy_hosts(outcome, "failed", ["web3", "web2", "web1"]) == ["web2"]
    # A message that merely looks like a refusal is not one: only error_type counts.
    register["results"][0].update(error_type="CommandError", msg="below min_active")
    outcome = planner.rolling_deploy_outcome([register], "drained", 1)
    assert planner.rolling_deploy_hosts(outcome, "refused") == []
    # An earlier round's register is never read as this round's.
    assert planner.rolling_deploy_outcome([register], "drained", 2) == {}


def test_a_refused_batch_is_split_into_the_fewest_rounds_the_guard_allows():
    hosts = ["web%d" % n for n in range(1, 9)]
    hv = hostvars(dict((h, [haproxy(h)]) for h in hosts))
    calls = planner.rolling_deploy_calls(hosts, hv, "drained", TYPES)
    refusal = dict(call_failed=True, error_type="GuardRefusedError", msg="backend app: ... below min_active",
                   guard=[dict(container="app", members=10, active=9, needed=6, leaving=hosts[:7], may_leave=3)])
    split = planner.rolling_deploy_split([registered(calls, {0: refusal})], hosts, 1)
    # web8 is already out of rotation (not leaving): it goes now at no cost.
    assert split["rounds"] == {"web1": 1, "web2": 1, "web3": 1, "web4": 2, "web5": 2, "web6": 2, "web7": 3,
                               "web8": 1}
    assert split["now"] == ["web1", "web2", "web3", "web8"] and not split["stuck"]
    assert "9 of 10 members in rotation and healthy, 6 needed, so 3 may leave" in split["message"]
    assert "round 1: web1, web2, web3, web8; round 2: web4, web5, web6; round 3: web7" in split["message"]


def test_a_host_the_floor_leaves_no_room_for_is_stuck():
    hv = hostvars({"web1": [haproxy("web1")]})
    calls = planner.rolling_deploy_calls(["web1"], hv, "drained", TYPES)
    refusal = dict(call_failed=True, error_type="GuardRefusedError",
                   guard=[dict(container="app", members=2, active=2, needed=2, leaving=["web1"], may_leave=0)])
    split = planner.rolling_deploy_split([registered(calls, {0: refusal})], ["web1"], 1)
    assert split["stuck"] == {"web1": "app"} and split["now"] == []


def test_a_host_refused_while_another_of_its_round_is_out_waits_for_the_next_round():
    """health_file: the files of a batch are moved one call after the other;
    the second call's guard counts the first host as out already."""
    hv = hostvars({"web1": [dict(type="health_file", path="/srv/1")], "web2": [dict(type="health_file", path="/srv/2")]})
    calls = planner.rolling_deploy_calls(["web1", "web2"], hv, "drained", TYPES)
    refusal = dict(call_failed=True, error_type="GuardRefusedError",
                   guard=[dict(container="app", members=3, active=2, needed=2, leaving=["/srv/2"], may_leave=0)])
    split = planner.rolling_deploy_split([registered(calls, {1: refusal})], ["web1", "web2"], 1)
    assert split["rounds"] == {"web1": 1, "web2": 2} and not split["stuck"]


def test_problems_name_the_key_and_what_to_do():
    problems = planner.rolling_deploy_problems([
        dict(type="haproxy", bakend="app", server="web1"),
        dict(type="haproxi"),
        dict(type="ipvs", port=80),
        dict(type="health_file", path="/srv/ok", info=dict(delegate_to="lb1", server="web1")),
        dict(type="lvs_director", address="10.0.0.1"),
        dict(type="haproxy", server="web1", state="drained"),
    ], TYPES)
    assert problems == [
        "haproxy binding: unknown key bakend",
        "binding type haproxi is not one of f5, haproxy, health_file, ipvs, lvs_director",
        "ipvs binding: needs address",
        "health_file binding: unknown key info.delegate_to (the view is read from where the file is: give info a "
        "socket reachable there, a tcp:// socket or stats_url)",
        "lvs_director binding: needs delegate_to (the director, or the list of directors of a VRRP pair)",
        "haproxy binding: unknown key state (the role sets it)",
    ]
    assert planner.rolling_deploy_problems([], TYPES) == [
        "rolling_deploy_bindings is empty: list the load balancers this host is bound to"]


@pytest.mark.parametrize("failure, expected", [
    (None, ("done", "done")),
    (dict(step="deploy", msg="boom"), ("failed", "deploy")),
])
def test_record(failure, expected):
    drain = dict(web1=dict(ok=True, refused=False, started=100.0, ended=101.5, wait=0.5, error_type=None, msg=None))
    restore = dict(web1=dict(ok=True, refused=False, started=105.0, ended=105.4, wait=0.3, error_type=None, msg=None))
    record = planner.rolling_deploy_record("web1", drain, restore, dict(start=99.0, health=104.0, end=106.0),
                                           failure, 1)
    assert (record["result"], record["step"]) == expected
    assert (record["drain"], record["wait"], record["deploy"], record["health"], record["restore"], record["total"]) \
        == (1.0, 0.5, 2.5, 1.0, 0.4, 7.0)
    assert record["touched"]


# --- rolling_deploy_serial: the play's serial from every form it arrives in

@pytest.mark.parametrize("given, expected", [
    (1, 1), (3, 3), ("2", 2), (" 25% ", "25%"), ("100%", "100%"), ("", 1),
    ([1, "50%"], [1, "50%"]), (["1", "25%", 4], [1, "25%", 4]),
    ('[1,"50%"]', [1, "50%"]),                 # -e rolling_deploy_serial=[1,"50%"]
    ("[1, '25%', '100%']", [1, "25%", "100%"]),  # single quotes, as written in YAML or Python
    ("1,25%,100%", [1, "25%", "100%"]), ("1 25%", [1, "25%"]), ("[2]", 2),
])
def test_serial_takes_every_form(given, expected):
    assert planner.rolling_deploy_serial(given) == expected


@pytest.mark.parametrize("given", [0, -1, "0", "0%", "101%", "ten", "[1, 'x']", "[1,", [], True, "1.5", "12.5%"])
def test_serial_refuses_what_is_not_a_batch_size(given):
    with pytest.raises(planner.AnsibleFilterError, match="rolling_deploy_serial"):
        planner.rolling_deploy_serial(given)


# --- approval points and the resume after one

@pytest.mark.parametrize("given, expected", [
    ([], []), ("", []), (None, []), (1, [1]), ("1", [1]), ("1,3", [1, 3]), ("3 1 3", [1, 3]),
    ([2, "1"], [1, 2]), ("[1, 3]", [1, 3]), ("['2']", [2]),
])
def test_approval_points_take_every_form(given, expected):
    assert planner.rolling_deploy_approval_points(given) == expected


@pytest.mark.parametrize("given", [0, "0", -1, "first", [1, "x"], True, "1.5", "[1,"])
def test_approval_points_refuse_what_is_not_a_batch_number(given):
    with pytest.raises(planner.AnsibleFilterError, match="rolling_deploy_approval_after"):
        planner.rolling_deploy_approval_points(given)


HOSTS = ["web1", "web2", "web3"]


@pytest.mark.parametrize("given, expected", [
    ({}, {"after_batch": 0, "done": []}),
    ("", {"after_batch": 0, "done": []}),
    ({"after_batch": 1, "done": ["web1"]}, {"after_batch": 1, "done": ["web1"]}),
    ({"after_batch": "2", "done": ["web1", "web2"]}, {"after_batch": 2, "done": ["web1", "web2"]}),
    ('{"after_batch": 1, "done": ["web1"]}', {"after_batch": 1, "done": ["web1"]}),  # a plain -e
])
def test_resume_state_reads_the_artifact(given, expected):
    assert planner.rolling_deploy_resume_state(given, HOSTS) == expected


def test_resume_state_refuses_hosts_this_play_does_not_roll():
    with pytest.raises(planner.AnsibleFilterError, match="names web9, which this play does not roll"):
        planner.rolling_deploy_resume_state({"after_batch": 1, "done": ["web1", "web9"]}, HOSTS)


@pytest.mark.parametrize("given", [
    {"after_batch": "one", "done": []}, {"after_batch": 1, "done": "web1"}, {"batch": 1}, ["web1"], "{nope",
    {"after_batch": True, "done": []},
])
def test_resume_state_refuses_other_shapes(given):
    with pytest.raises(planner.AnsibleFilterError, match="rolling_deploy_resume"):
        planner.rolling_deploy_resume_state(given, HOSTS)


# --- rolling_deploy_timeline: every phase of a host, from real clock marks

T0 = 1764750000.0       # 2025-12-03T08:20:00Z


def answered(calls, started, elapsed, waited=0.0, **extra):
    """A run_once loop's register as gentle.lb.member returns it: the
    controller's clock around each call (one after the other), the members'
    records."""
    results = []
    for call in calls:
        state = call["options"]["state"]
        result = dict(item=call, changed=True, call_failed=False, failed=False, started=round(started, 3),
                      ended=round(started + elapsed, 3), elapsed=elapsed, waited=waited, type=call["type"],
                      module="gentle.lb.haproxy_member", msg="server %s: %s" % (", ".join(call["hosts"]), state),
                      members=[dict(container=call["options"]["backend"], name=m["values"][0], address="127.0.0.1",
                                    port=8000, state=state, state_before="present", weight=1, weight_before=1,
                                    sessions=0, health="up") for m in call["members"]])
        result.update(extra)
        results.append(result)
        started += elapsed
    return dict(results=results, changed=True, msg="All items completed")


def two_backends(hosts=("web1", "web2")):
    hv = hostvars({h: [haproxy(h, label="app"), haproxy(h, backend="api", label="api")] for h in hosts})
    return hv, list(hosts)


def assert_ordered(phases):
    for entry in phases:
        assert entry["started"] <= entry["ended"], entry
        for binding in entry.get("bindings", []):
            assert entry["started"] <= binding["started"] <= binding["ended"] <= entry["ended"], (entry, binding)
    for before, after in zip(phases, phases[1:]):
        assert before["ended"] <= after["started"], (before, after)


def test_timeline_of_a_round_has_every_phase_in_order_with_one_entry_per_binding():
    hv, hosts = two_backends()
    drains = planner.rolling_deploy_calls(hosts, hv, "drained", TYPES)
    waits = planner.rolling_deploy_calls(hosts, hv, "drained", TYPES, True)
    restores = planner.rolling_deploy_calls(hosts, hv, "present", TYPES)
    rewaits = planner.rolling_deploy_calls(hosts, hv, "present", TYPES, True)

    def local(stamp):
        return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S.%f")

    calls = dict(drain=[answered(drains, T0 + 1, 0.05), {}], wait=answered(waits, T0 + 1.2, 2.0, waited=1.9),
                 restore=answered(restores, T0 + 9, 0.04), restore_wait=answered(rewaits, T0 + 9.1, 0.5, waited=0.4),
                 soak=dict(changed=False, start=local(T0 + 10.2), stop=local(T0 + 15.2), delta=5, echo=True))
    marks = dict(start=T0, health=T0 + 8.0, end=T0 + 15.3)
    record = planner.rolling_deploy_record("web2", planner.rolling_deploy_outcome(calls["drain"] + [calls["wait"]], "drained", 1),
                                           planner.rolling_deploy_outcome([calls["restore"], calls["restore_wait"]], "present", 1),
                                           marks, None, 1)
    phases = planner.rolling_deploy_timeline(record, "web2", calls, marks, None, 3)

    assert [p["phase"] for p in phases] == ["drain", "wait", "deploy", "health", "restore", "restore_wait", "soak"]
    assert_ordered(phases)
    assert {(p["host"], p["batch"], p["round"], p["result"]) for p in phases} == {("web2", 3, 1, "ok")}
    drain = phases[0]
    assert [(b["binding"], b["label"], b["type"], b["container"], b["result"]) for b in drain["bindings"]] == [
        (1, "app", "haproxy", ["app"], "ok"), (2, "api", "haproxy", ["api"], "ok")]
    # Each binding keeps its own call's clock: the api call came after the app call.
    assert [(b["started"], b["ended"]) for b in drain["bindings"]] == [(T0 + 1, T0 + 1.05), (T0 + 1.05, T0 + 1.1)]
    assert (drain["started"], drain["ended"], drain["wait_in_call"]) == (T0 + 1, T0 + 1.1, False)
    assert drain["started_iso"] == "2025-12-03T08:20:01.000Z" and drain["bindings"][1]["ended_iso"] == "2025-12-03T08:20:01.100Z"
    assert [len(p.get("bindings", [])) for p in phases] == [2, 2, 0, 0, 2, 2, 0]
    assert (phases[2]["started"], phases[2]["ended"]) == (T0 + 5.2, T0 + 8.0)      # end of the wait pass -> health mark
    assert (phases[3]["started"], phases[3]["ended"]) == (T0 + 8.0, T0 + 9.0)      # health mark -> restore call
    assert (phases[6]["started"], phases[6]["ended"], phases[6]["seconds"]) == (T0 + 10.2, T0 + 15.2, 5.0)
    assert phases[1]["waited"] == 1.9 and "check_mode" not in phases[0]


def test_timeline_of_a_failed_deploy_ends_at_the_failure_and_names_the_step():
    hv = hostvars({"web1": [haproxy("web1")]})
    drains = planner.rolling_deploy_calls(["web1"], hv, "drained", TYPES, round_number=2)
    calls = dict(drain=[answered(drains, T0 + 1, 1.5, waited=1.4), {}], wait={"results": [], "skipped": True},
                 restore={"results": [], "skipped": True}, restore_wait={}, soak={"skipped": True})
    failure = dict(step="deploy", msg="non-zero return code: ctl.py: v2-broken did not start", at=T0 + 6.5,
                   error_type=None)
    marks = dict(start=T0, end=T0 + 6.6)
    record = dict(result="failed", step="deploy", round=2)
    phases = planner.rolling_deploy_timeline(record, "web1", calls, marks, failure, 2, True)

    assert [(p["phase"], p["result"]) for p in phases] == [("drain", "ok"), ("deploy", "failed")]
    assert_ordered(phases)
    assert phases[0]["wait_in_call"] and phases[0]["waited"] == 1.4
    assert (phases[1]["started"], phases[1]["ended"]) == (T0 + 2.5, T0 + 6.5)
    assert (phases[1]["step"], phases[1]["msg"]) == ("deploy", failure["msg"])
    assert all(p["check_mode"] and p["round"] == 2 and p["batch"] == 2 for p in phases)


def test_timeline_of_a_drain_timeout_names_the_binding_and_its_error_type():
    hv, hosts = two_backends()
    drains = planner.rolling_deploy_calls(hosts, hv, "drained", TYPES)
    waits = planner.rolling_deploy_calls(hosts, hv, "drained", TYPES, True)
    wait = answered(waits, T0 + 1.2, 5.0, waited=5.0)
    # The api wait timed out with web2 still holding sessions; web1 drained.
    wait["results"][1].update(call_failed=True, error_type="WaitTimeoutError",
                              msg="server web1, web2 in backend api: goal not reached after 5.00s: web2 3 open")
    wait["results"][1]["members"][1]["sessions"] = 3
    calls = dict(drain=[answered(drains, T0 + 1, 0.05), {}], wait=wait)
    marks = dict(start=T0, end=T0 + 12)
    for host, expected in (("web1", "ok"), ("web2", "failed")):
        record = dict(result=expected, step="drain" if expected == "failed" else "done", round=1)
        phases = planner.rolling_deploy_timeline(record, host, calls, marks, None, 1)
        assert [p["phase"] for p in phases][:2] == ["drain", "wait"]
        assert phases[1]["result"] == expected
        assert [(b["label"], b["result"], b["error_type"]) for b in phases[1]["bindings"]] == [
            ("app", "ok", None), ("api", expected, "WaitTimeoutError" if expected == "failed" else None)]
    assert phases[1]["error_type"] == "WaitTimeoutError" and "web2 3 open" in phases[1]["msg"]
    assert len(phases) == 2           # nothing after a failed drain


def test_timeline_after_the_round_adds_the_rollback_and_the_play_list_is_by_start():
    hv = hostvars({"web1": [haproxy("web1")], "web2": [haproxy("web2")]})
    restores = planner.rolling_deploy_calls(["web2"], hv, "present", TYPES)
    round_phases = [dict(planner._entry("drain", T0 + 1, T0 + 2), host="web2", batch=2, round=1),
                    dict(planner._entry("health", T0 + 2, T0 + 5, result="failed", step="health"),
                         host="web2", batch=2, round=1)]
    timeline = planner.rolling_deploy_timeline_failure(
        round_phases, "web2", dict(failure_restore={}, rollback_restore=answered(restores, T0 + 9, 0.3)),
        dict(start=T0, health=T0 + 2, rollback=T0 + 8), T0 + 10)
    assert [p["phase"] for p in timeline] == ["drain", "health", "rollback", "rollback_health", "rollback_restore"]
    assert_ordered(timeline)
    assert (timeline[2]["started"], timeline[2]["ended"]) == (T0 + 5, T0 + 8)
    assert timeline[4]["bindings"][0]["result"] == "ok" and timeline[4]["batch"] == 2
    failed = planner.rolling_deploy_timeline_failure(round_phases, "web2", {}, dict(), T0 + 7, "rollback.yml failed")
    assert [(p["phase"], p["result"], p["ended"]) for p in failed][2:] == [("rollback", "failed", T0 + 7)]

    other = [dict(planner._entry("drain", T0 + 0.5, T0 + 0.9), host="web1", batch=1, round=1)]
    play = planner.rolling_deploy_play_timeline(["web1", "web2", "web3"], {
        "web1": {"rolling_deploy_timeline": other}, "web2": {"rolling_deploy_timeline": timeline}, "web3": {}})
    assert [(p["host"], p["phase"]) for p in play][:2] == [("web1", "drain"), ("web2", "drain")]
    assert len(play) == 6


def test_batch_numbers_follow_the_batches_before():
    play = ["web1", "web2", "web3", "web4", "web5"]
    assert planner.rolling_deploy_batch(["web1"], play, {}) == 1
    hv = {"web1": {"_rolling_deploy_batch": 1}, "web2": {"_rolling_deploy_batch": 2}, "web3": {"_rolling_deploy_batch": 2}}
    # serial [1, 2, 2]: the third batch follows the two before it.
    assert planner.rolling_deploy_batch(["web4", "web5"], play, hv) == 3
    # A host of an earlier batch that never got to the role is left out.
    assert planner.rolling_deploy_batch(["web4", "web5"], play, {"web1": {"_rolling_deploy_batch": 1}}) == 2
