# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rolling_deploy role's batch planning (plugins/filter/rolling_deploy.py):
one call per balancer for a batch, results read back per host by error_type,
and the split of a refused round - against hand-written results of the shape
gentle.lb.member returns."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
