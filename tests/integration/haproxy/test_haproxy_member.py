# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""haproxy_member against a real HAProxy (2.6, 3.0 and 3.2): every state
transition with check mode, diff and idempotence; waiting on real held
connections; timeouts; the capacity guard; the three transports."""

from __future__ import annotations

import time

import pytest

from conftest import wait_until

FORCED = {"present": 0, "drained": 0x08, "absent": 0x01}
SETUP = {"present": None, "drained": "drain", "absent": "maint"}
TRANSITIONS = [(a, b) for a in FORCED for b in FORCED if a != b]


def others(states, key):
    return dict((k, v) for k, v in states.items() if k != key)


@pytest.mark.parametrize("before,after", TRANSITIONS)
def test_state_transition(lab, member, before, after):
    if SETUP[before]:
        lab.send("set server app/web3 state %s" % SETUP[before])
    snapshot = lab.admin_states()
    args = dict(backend="app", server="web3", state=after)

    planned = member(check=True, diff=True, **args)
    assert not planned.failed, planned
    assert planned["changed"] is True
    entry = planned["members"][0]
    assert (entry["state_before"], entry["state"]) == (before, after)
    assert planned["diff"]["before"]["app/web3"]["state"] == before
    assert planned["diff"]["after"]["app/web3"]["state"] == after
    assert "check mode" in planned["msg"]
    assert lab.admin_states() == snapshot                    # nothing written
    assert lab.info(backend="app", server="web3")[("app", "web3")]["state"] == before

    done = member(**args)
    assert not done.failed, done
    assert done["changed"] is True
    assert done["members"][0]["state"] == after
    assert lab.admin("app", "web3") == FORCED[after]
    assert lab.info(backend="app", server="web3")[("app", "web3")]["state"] == after
    assert others(lab.admin_states(), ("app", "web3")) == others(snapshot, ("app", "web3"))

    again = member(**args)
    assert not again.failed, again
    assert again["changed"] is False
    assert "already %s" % after in again["msg"]


@pytest.mark.one_version
def test_diff_only_in_diff_mode(lab, member):
    plain = member(backend="app", server="web3", state="drained")
    assert "diff" not in plain
    with_diff = member(diff=True, backend="app", server="web3", state="present")
    assert with_diff["diff"] == {"before": {"app/web3": {"state": "drained", "weight": 1}},
                                 "after": {"app/web3": {"state": "present", "weight": 1}}}


def test_present_waits_until_up_after_a_check(lab, member):
    lab.send("set server app/web3 state maint")
    app = lab.app("web3")
    checks_before = app.health_checks             # checks are paused in MAINT
    result = member(backend="app", server="web3", state="present")
    assert not result.failed, result
    entry = result["members"][0]
    # Leaving MAINT, HAProxy shows "UP 1/2" until a check passes; we wait for "UP",
    # so the server was not called usable before a check reached it.
    assert entry["status"] == "UP" and entry["health"] == "up"
    assert app.health_checks > checks_before
    assert result["waited"] > 0
    assert not result.get("warnings")


def test_present_on_a_failing_server_times_out(lab, member):
    lab.set_health("web3", False)
    lab.wait_status("app", "web3", "DOWN")
    result = member(backend="app", server="web3", state="present", wait_timeout=0.5)
    assert result.failed
    assert "server web3: not usable after wait_timeout=0.5s (app/web3 health down)" in result["msg"]
    assert result["changed"] is False


def test_drain_waits_while_a_client_holds_a_connection(lab, background):
    held = lab.hold("web3")
    run = background("haproxy_member", dict(lab.conn(), backend="app", server="web3", state="drained"))
    wait_until(lambda: lab.admin("app", "web3") == 0x08, timeout=5, what="web3 drained")
    time.sleep(1.0)
    assert not run.done, run.result                   # the session is still open
    assert lab.scur("app", "web3") == 1
    released = time.monotonic()
    held.release()
    result = run.join()
    latency = run.finished_at - released
    print("\n%s: returned %.3fs after the last session closed" % (lab.version, latency))
    assert not result.failed, result
    assert result["changed"] is True
    assert result["members"][0]["sessions"] == 0
    assert result["waited"] >= 1.0
    assert latency < 1.0
    assert held.wait(5) == 200                        # the client got its whole answer


def test_drain_timeout_fails_leaves_it_drained_and_counts_sessions(lab, member):
    held = lab.hold("web3")
    result = member(backend="app", server="web3", state="drained", wait_timeout=1)
    assert result.failed
    assert result["msg"] == ("server web3: not drained after wait_timeout=1s (app/web3 1 session); "
                             "giving up, raise wait_timeout or use on_timeout: force")
    assert result["changed"] is True
    assert result["members"][0]["state"] == "drained" and result["members"][0]["sessions"] == 1
    assert lab.admin("app", "web3") == 0x08
    assert not held.done


@pytest.mark.one_version
def test_on_timeout_continue_warns(lab, member):
    lab.hold("web3")
    result = member(backend="app", server="web3", state="drained", wait_timeout=0.3, on_timeout="continue")
    assert not result.failed and result["changed"] is True
    assert any("app/web3 1 session" in str(w) for w in result["warnings"])


def test_on_timeout_force_shuts_the_sessions(lab, member):
    held = lab.hold("web3")
    result = member(backend="app", server="web3", state="absent", wait_timeout=0.5, on_timeout="force")
    assert not result.failed, result
    assert "not drained after wait_timeout=0.5s (app/web3 1 session open), so 'shutdown sessions server' sent " \
        "for app/web3; no session is left" in result["msg"], result["msg"]
    assert "goal reached" not in result["msg"]
    held.wait(5)
    assert held.done and held.status != 200           # the session was cut
    assert lab.scur("app", "web3") == 0
    assert lab.admin("app", "web3") == 0x01


def test_absent_waits_too(lab, background):
    held = lab.hold("web2")
    run = background("haproxy_member", dict(lab.conn(), backend="app", server="web2", state="absent"))
    wait_until(lambda: lab.admin("app", "web2") == 0x01, timeout=5, what="web2 in MAINT")
    time.sleep(0.5)
    assert not run.done
    held.release()
    result = run.join()
    assert not result.failed and result["members"][0]["state"] == "absent"
    assert held.wait(5) == 200                        # MAINT does not cut sessions


def test_shared_server_drained_in_both_backends_together(lab, background):
    in_app = lab.hold("shared1", backend="app")
    in_api = lab.hold("shared1", backend="api")
    run = background("haproxy_member", dict(lab.conn(), server="shared1", state="drained"))
    wait_until(lambda: lab.admin("app", "shared1") == 0x08 and lab.admin("api", "shared1") == 0x08,
               timeout=5, what="shared1 drained in both")
    in_app.release()
    time.sleep(0.7)
    assert not run.done                               # api still has its session
    released = time.monotonic()
    in_api.release()
    result = run.join()
    assert not result.failed, result
    assert sorted((m["container"], m["state"]) for m in result["members"]) == [
        ("api", "drained"), ("app", "drained")]
    assert "backend api, app" in result["msg"]
    assert run.finished_at - released < 1.0
    assert lab.admin("tracking", "trk1") == 0         # unrelated servers untouched


@pytest.mark.one_version
def test_capacity_guard_refuses_before_writing(lab, member):
    lab.send("set server api/api1 state drain")
    before = lab.admin_states()
    for check in (True, False):
        refused = member(check=check, server="shared1", state="drained")
        assert refused.failed
        assert refused["msg"] == ("backend api: taking shared1 out would leave 0 of 2 members in rotation "
                                  "and healthy, below min_active=1 (1); restore other members first or "
                                  "lower min_active")
        assert lab.admin_states() == before           # app/shared1 was not drained either
    allowed = member(server="shared1", state="drained", min_active=0)
    assert not allowed.failed and allowed["changed"] is True


@pytest.mark.one_version
def test_capacity_guard_counts_only_healthy_servers(lab, member):
    for name in ("web1", "web2"):
        lab.set_health(name, False)
    for name in ("web1", "web2"):
        lab.wait_status("app", name, "DOWN")
    refused = member(backend="app", server="web3", state="absent", min_active="50%")
    assert refused.failed and "min_active=50% (3)" in refused["msg"]
    assert "leave 2 of 5" in refused["msg"]           # shared1 and nocheck1 (no check counts)


def test_no_check_server(lab, member):
    down = member(backend="app", server="nocheck1", state="absent")
    assert not down.failed and down["members"][0]["status"] == "MAINT"
    up = member(backend="app", server="nocheck1", state="present")
    assert not up.failed, up
    assert up["members"][0]["health"] == "unknown" and up["members"][0]["status"] == "no check"
    assert up["waited"] < 1.0


def test_drained_server_that_is_down_stays_drained(lab, member):
    """show stat says DOWN for a drained server whose check fails; we use the bitmask."""
    lab.set_health("web3", False)
    lab.wait_status("app", "web3", "DOWN")
    first = member(backend="app", server="web3", state="drained")
    assert not first.failed and first["changed"] is True
    again = member(backend="app", server="web3", state="drained")
    assert again["changed"] is False
    assert again["members"][0]["status"] == "DOWN" and again["members"][0]["state"] == "drained"


@pytest.mark.one_version
def test_select_by_address(lab, member):
    host, port = lab.addr("web2", "app")
    snapshot = lab.admin_states()
    guarded = member(address="%s:%d" % (host, port), state="drained")
    assert guarded.failed and guarded["msg"].startswith("backend tracking: taking trk1 out")
    assert lab.admin_states() == snapshot
    result = member(address="%s:%d" % (host, port), state="drained", min_active=0)
    assert not result.failed, result
    # trk1 points at web2's app too (same address), so both are selected
    assert sorted((m["container"], m["name"]) for m in result["members"]) == [
        ("app", "web2"), ("tracking", "trk1")]
    changed = [k for k, v in lab.admin_states().items() if v != snapshot[k]]
    assert sorted(changed) == [("app", "web2"), ("tracking", "trk1")]


@pytest.mark.one_version
def test_select_by_name_and_address_must_both_match(lab, member):
    host, port = lab.addr("web2", "app")
    result = member(backend="app", server="web3", address="%s:%d" % (host, port), state="drained")
    assert result.failed
    assert result["msg"].startswith("server web3: not found in backend app")


def test_weight(lab, member):
    set_five = member(backend="app", server="web1", state="present", weight=5)
    assert set_five["changed"] is True and set_five["members"][0]["weight"] == 5
    assert lab.admin_states()[("app", "web1")] == (0, 5)
    assert member(backend="app", server="web1", state="present", weight="5")["changed"] is False
    back = member(backend="app", server="web1", state="present", weight="100%")
    assert back["changed"] is True and back["members"][0]["weight"] == 1
    # 50% of the initial weight 1 is 0 (HAProxy rounds down): that is out of
    # rotation, so refused before anything is written (state=drained does that, guarded).
    half = member(backend="app", server="web1", state="present", weight="50%")
    assert half.failed and half["error_type"] == "InvalidInputError"
    assert "would leave it at weight 0" in half["msg"]
    assert lab.admin_states()[("app", "web1")] == (0, 1)
    zero = member(backend="app", server="web1", state="present", weight=0)
    assert zero.failed and zero["error_type"] == "InvalidInputError"


def test_present_gives_a_server_left_at_weight_0_its_weight_back(lab, member):
    lab.send("set weight app/web1 0")
    result = member(backend="app", server="web1", state="present")
    assert result["changed"] is True and result["members"][0]["weight"] == 1
    assert lab.admin_states()[("app", "web1")] == (0, 1)


@pytest.mark.one_version
def test_weight_is_ignored_when_draining(lab, member):
    result = member(backend="app", server="web1", state="drained", weight=7)
    assert not result.failed and result["members"][0]["weight"] == 1


def test_restore_with_weight_from_drain(lab, member):
    lab.send("set server app/web1 state drain")
    result = member(diff=True, backend="app", server="web1", state="present", weight=3)
    assert result["diff"]["after"]["app/web1"] == {"state": "present", "weight": 3}
    assert lab.admin_states()[("app", "web1")] == (0, 3)


def test_tracking_server_refused_then_restored_together(lab, member):
    lab.send("set server app/web2 state maint")
    wait_until(lambda: lab.admin("tracking", "trk1") == 0x02, timeout=5, what="trk1 inherits MAINT")
    refused = member(backend="tracking", server="trk1", state="present")
    assert refused.failed
    assert "inherited from the server it tracks (app/web2)" in refused["msg"]
    assert lab.admin("app", "web2") == 0x01
    host, port = lab.addr("web2", "app")
    together = member(address="%s:%d" % (host, port), state="present")
    assert not together.failed, together
    assert lab.admin("app", "web2") == 0 and lab.admin("tracking", "trk1") == 0


@pytest.mark.parametrize("transport", ["unix", "stats"])
def test_transports(lab, member, transport, background):
    drain_and_restore_over(lab, member, transport, background)


@pytest.mark.one_version
def test_transport_tcp(lab, member, background):
    """The runtime API over TCP: the unix socket's protocol on another stream."""
    drain_and_restore_over(lab, member, "tcp", background)


def drain_and_restore_over(lab, member, transport, background):
    held = lab.hold("web2")
    run = background("haproxy_member", dict(lab.conn(transport), backend="app", server="web2",
                                            state="drained"))
    wait_until(lambda: lab.admin("app", "web2") == 0x08, timeout=5, what="web2 drained")
    time.sleep(0.3)
    assert not run.done
    held.release()
    drained = run.join()
    assert not drained.failed and drained["changed"] is True
    assert member(transport=transport, backend="app", server="web2", state="drained")["changed"] is False
    absent = member(transport=transport, backend="app", server="web2", state="absent")
    assert absent["changed"] is True and lab.admin("app", "web2") == 0x01
    present = member(transport=transport, backend="app", server="web2", state="present")
    assert not present.failed and present["changed"] is True
    assert present["members"][0]["status"] == "UP"
    assert lab.admin("app", "web2") == 0
    assert member(transport=transport, backend="app", server="web2", state="present")["changed"] is False


@pytest.mark.one_version
def test_stats_page_check_mode(lab, member):
    planned = member(transport="stats", check=True, backend="app", server="web3", state="absent")
    assert planned["changed"] is True
    assert lab.admin("app", "web3") == 0


def test_present_adds_a_dynamic_server(lab, member):
    name = "dyn" + lab.version.replace(".", "")
    app = lab.apps.get(name) or lab.add_app(name)
    args = dict(backend="app", server=name, address=app.address, state="present", weight=2)
    planned = member(check=True, **args)
    assert planned["changed"] is True and planned["members"][0]["state_before"] == "absent"
    assert ("app", name) not in lab.admin_states()
    added = member(**args)
    assert not added.failed, added
    entry = added["members"][0]
    assert (entry["state_before"], entry["state"], entry["weight"]) == ("absent", "present", 2)
    assert entry["status"] == "UP" and entry["health_check"] is True
    assert lab.admin_states()[("app", name)] == (0, 2)
    assert member(**args)["changed"] is False
    assert member(backend="app", server=name, state="absent")["changed"] is True
    assert lab.admin("app", name) == 0x01


def test_add_refused_on_a_static_backend(lab, member):
    app = lab.apps.get("dyns") or lab.add_app("dyns")
    before = lab.admin_states()
    result = member(backend="static", server="dyns", address=app.address, state="present")
    assert result.failed
    assert "Backend must use a dynamic load balancing" in result["msg"]
    assert "add it to haproxy.cfg instead" in result["msg"]
    assert lab.admin_states() == before


def test_static_backend_refuses_weight(lab, member):
    result = member(backend="static", server="s1", state="present", weight=50)
    assert result.failed
    assert "only accepts weights '0%' and '100%'" in result["msg"]
    assert lab.admin_states()[("static", "s1")] == (0, 1)
