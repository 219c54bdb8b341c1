# -*- coding: utf-8 -*-
"""Every state transition of f5_pool_member over iControl REST, against the
F5 emulator: check mode (nothing written, verified with f5_pool_member_info and
the emulator's request log), the real run, and a rerun reporting no change."""
from conftest import DISABLED, ENABLED, FORCED, info, run, stored, writes


def transition(f5, want_before, want_after, state_before, state_after, info_before=None, **args):
    """check mode -> real run -> rerun, for one member of pool web (or the pools in args)."""
    pool = args.get("pool", "web")
    name = args.get("name", "10.0.0.1:80")
    key = ("/Common/%s" % pool, name)
    assert stored(f5, pool, name) == want_before

    f5.reset_requests()
    checked = run(f5, check=True, diff=True, **args)
    assert not checked.failed, checked
    assert checked["changed"] is True
    assert [(m["state_before"], m["state"]) for m in checked["members"]] == [(state_before, state_after)]
    assert checked["diff"]["before"]["%s/%s" % key]["state"] == state_before
    assert checked["diff"]["after"]["%s/%s" % key]["state"] == state_after
    assert "(check mode)" in checked["msg"]
    assert writes(f5) == []
    assert stored(f5, pool, name) == want_before
    if want_before is not None:
        assert info(f5, pool=pool)[key]["state"] == (info_before or state_before)

    done = run(f5, **args)
    assert not done.failed, done
    assert done["changed"] is True
    assert stored(f5, pool, name) == want_after
    if want_after is not None:
        assert info(f5, pool=pool)[key]["state"] == state_after
    else:
        assert key not in info(f5, pool=pool)

    again = run(f5, **args)
    assert not again.failed, again
    assert again["changed"] is False, again
    assert stored(f5, pool, name) == want_after
    return done


def test_drained_present_absent_cycle(f5):
    done = transition(f5, ENABLED, DISABLED, "present", "drained", pool="web", name="10.0.0.1:80", state="drained")
    entry = done["members"][0]
    assert entry["admin_state"] == "disabled" and entry["sessions"] == 0
    assert entry["container"] == "/Common/web" and entry["address"] == "10.0.0.1" and entry["port"] == 80
    # Only pool web was touched: the same member in pool api is still enabled.
    assert stored(f5, "api", "10.0.0.1:80") == ENABLED

    transition(f5, DISABLED, ENABLED, "drained", "present", pool="web", name="10.0.0.1:80", state="present")
    transition(f5, ENABLED, None, "present", "absent", pool="web", name="10.0.0.1:80", state="absent")
    # absent never deletes the node: pool api still has a member on it, and the node object stays.
    nodes = [n["fullPath"] for n in f5.dump()["nodes"]]
    assert "/Common/10.0.0.1" in nodes
    assert stored(f5, "api", "10.0.0.1:80") == ENABLED


def test_absent_keeps_a_node_no_other_pool_uses(f5):
    transition(f5, ENABLED, None, "present", "absent", pool="solo", name="10.0.0.5:80", state="absent",
               min_active=0)
    assert "/Common/10.0.0.5" in [n["fullPath"] for n in f5.dump()["nodes"]]
    assert not any(method == "DELETE" and "/ltm/node" in path for method, path in writes(f5))


def test_absent_member_already_gone_is_ok_but_unknown_pool_is_not(f5):
    result = run(f5, pool="empty", name="10.0.0.1:80", state="absent")
    assert not result.failed and result["changed"] is False
    assert "already absent" in result["msg"]
    result = run(f5, pool="nope", name="10.0.0.1:80", state="absent")
    assert result.failed and "pool /Common/nope: not found" in result["msg"]


def test_drained_forced_offline(f5):
    done = transition(f5, ENABLED, FORCED, "present", "drained", pool="web", name="10.0.0.2:80", state="drained",
                      drain_mode="forced_offline")
    assert done["members"][0]["admin_state"] == "forced_offline"
    assert done["members"][0]["health"] == "down"          # forced offline reads availability offline
    # The default drain mode leaves a forced-offline member alone: it already takes less.
    again = run(f5, pool="web", name="10.0.0.2:80", state="drained")
    assert again["changed"] is False and stored(f5, "web", "10.0.0.2:80") == FORCED


def test_forced_offline_upgrades_a_disabled_member(f5):
    assert not run(f5, pool="web", name="10.0.0.2:80", state="drained").failed
    # Seen with drain_mode forced_offline, a member that is only disabled reads "disabled" (it must
    # change); the info module, which has no drain mode, reads it "drained".
    transition(f5, DISABLED, FORCED, "disabled", "drained", info_before="drained", pool="web", name="10.0.0.2:80",
               state="drained", drain_mode="forced_offline")


def test_present_from_forced_offline_sends_both_fields(f5):
    assert not run(f5, pool="web", name="10.0.0.2:80", state="drained", drain_mode="forced_offline").failed
    f5.reset_requests()
    transition(f5, FORCED, ENABLED, "drained", "present", pool="web", name="10.0.0.2:80", state="present")
    bodies = [e["body"] for e in f5.requests()["entries"] if e["method"] == "PATCH"]
    assert bodies == [] or all(set(b) >= {"session", "state"} for b in bodies)


def test_present_adds_a_member_and_the_node(f5):
    done = transition(f5, None, ENABLED, "absent", "present", pool="web", name="10.0.0.7:80",
                      address="10.0.0.7", port=80, state="present")
    assert done["members"][0]["weight"] == 1
    posts = [e for e in f5.requests()["entries"] if e["method"] == "POST" and e["path"].endswith("/members")]
    assert [p["body"] for p in posts] == [] or all(p["body"]["session"] == "user-enabled" for p in posts)
    assert "/Common/10.0.0.7" in [n["fullPath"] for n in f5.dump()["nodes"]]


def test_present_reuses_an_existing_node_of_that_address(f5):
    transition(f5, None, ENABLED, "absent", "present", pool="web", name="web9:8080", address="10.0.0.9",
               port=8080, state="present")
    nodes = [n for n in f5.dump()["nodes"] if n["address"] == "10.0.0.9"]
    assert [n["fullPath"] for n in nodes] == ["/Common/web9"]


def test_present_with_another_name_for_an_existing_address_is_refused(f5):
    f5.reset_requests()
    result = run(f5, pool="web", name="other", address="10.0.0.9", port=8080, state="present")
    assert result.failed and "already belongs to node /Common/web9" in result["msg"]
    assert writes(f5) == []


def test_present_needs_a_port_to_add(f5):
    result = run(f5, pool="empty", address="10.0.0.7", state="present")
    assert result.failed and "give port" in result["msg"]


def test_drained_never_adds_a_member(f5):
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.8:80", state="drained")
    assert result.failed and "not found in pool /Common/web" in result["msg"]
    assert writes(f5) == []


def test_weight_is_the_ratio(f5):
    done = run(f5, pool="web", name="10.0.0.1:80", state="present", weight=5)
    assert done["changed"] is True and done["members"][0]["weight_before"] == 1
    assert done["members"][0]["weight"] == 5
    assert info(f5, pool="web")[("/Common/web", "10.0.0.1:80")]["weight"] == 5
    assert run(f5, pool="web", name="10.0.0.1:80", state="present", ratio=5)["changed"] is False
    # Omitting weight keeps it; drained ignores it (same options for drain and restore).
    assert run(f5, pool="web", name="10.0.0.1:80", state="present")["changed"] is False
    drained = run(f5, pool="web", name="10.0.0.1:80", state="drained", weight=2)
    assert drained["changed"] is True and drained["members"][0]["weight"] == 5
    bad = run(f5, pool="web", name="10.0.0.1:80", state="present", weight=0)
    assert bad.failed and "between 1 and 65535" in bad["msg"]


def test_capacity_guard_refuses_before_writing(f5):
    assert not run(f5, pool="api", name="10.0.0.1:80", state="drained").failed
    f5.reset_requests()
    result = run(f5, pool="api", name="10.0.0.2:80", state="drained")
    assert result.failed
    assert "min_active=1" in result["msg"] and "leave 0 of 2 members" in result["msg"]
    assert writes(f5) == [] and stored(f5, "api", "10.0.0.2:80") == ENABLED
    # Check mode reports the refusal too.
    assert run(f5, check=True, pool="api", name="10.0.0.2:80", state="drained").failed
    # A percentage is of the pool's members; 0 turns the guard off.
    assert run(f5, pool="web", name="10.0.0.1:80", state="drained", min_active="50%").failed is False
    assert run(f5, pool="web", name="10.0.0.2:80", state="drained", min_active="50%").failed
    assert not run(f5, pool="api", name="10.0.0.2:80", state="drained", min_active=0).failed


def test_capacity_guard_counts_health(f5):
    # Members the monitor marks down do not count as capacity.
    f5.set_pool_monitor("web", "/Common/http")
    f5.set_member(pool="web", member="10.0.0.2:80", health="down")
    f5.set_member(pool="web", member="10.0.0.3:80", health="down")
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed and "leave 0 of 3" in result["msg"]
    f5.set_member(pool="web", member="10.0.0.3:80", health="up")
    assert not run(f5, pool="web", name="10.0.0.1:80", state="drained").failed


def test_monitor_derived_reads_are_mapped(f5):
    # With a monitor, an enabled member reads monitor-enabled/up; disabled reads user-disabled/<monitor view>.
    f5.set_pool_monitor("web", "/Common/http")
    members = info(f5, pool="web")
    entry = members[("/Common/web", "10.0.0.1:80")]
    assert (entry["f5_session"], entry["f5_state"], entry["state"]) == ("monitor-enabled", "up", "present")
    assert entry["health"] == "up" and entry["availability"] == "available"
    assert run(f5, pool="web", name="10.0.0.1:80", state="present")["changed"] is False
    assert run(f5, pool="web", name="10.0.0.1:80", state="drained")["changed"] is True
    entry = info(f5, pool="web")[("/Common/web", "10.0.0.1:80")]
    assert (entry["f5_session"], entry["f5_state"], entry["state"]) == ("user-disabled", "up", "drained")
    assert run(f5, pool="web", name="10.0.0.1:80", state="drained")["changed"] is False


def test_member_in_every_pool_of_the_partition(f5):
    done = run(f5, name="10.0.0.1:80", state="drained", min_active=0)
    assert sorted(m["container"] for m in done["members"]) == ["/Common/api", "/Common/app/web", "/Common/web"]
    for pool in ("web", "api"):
        assert stored(f5, pool, "10.0.0.1:80") == DISABLED
    assert run(f5, name="10.0.0.1:80", state="drained")["changed"] is False
    # One request lists every pool with its members; stats only of the member, in the pool that holds it.
    f5.reset_requests()
    assert run(f5, name="10.0.0.5:80", state="present")["changed"] is False
    counts = f5.requests()["counts"]
    assert counts.get("GET /mgmt/tm/ltm/pool") == 1
    assert [k for k in counts if k.endswith("/stats")] == [
        "GET /mgmt/tm/ltm/pool/~Common~solo/members/~Common~10.0.0.5:80/stats"]


def test_pool_list(f5):
    done = run(f5, pool=["web", "api"], address="10.0.0.2", port=80, state="drained")
    assert sorted(m["container"] for m in done["members"]) == ["/Common/api", "/Common/web"]
    assert stored(f5, "web", "10.0.0.2:80") == DISABLED and stored(f5, "api", "10.0.0.2:80") == DISABLED


def test_present_where_missing_with_a_pool_list(f5):
    done = run(f5, pool=["web", "solo"], address="10.0.0.2", port=80, state="present")
    assert done["changed"] is True
    before = {(m["container"], m["state_before"]) for m in done["members"]}
    assert before == {("/Common/web", "present"), ("/Common/solo", "absent")}
    assert stored(f5, "solo", "10.0.0.2:80") == ENABLED


def test_info_reads_a_pool_in_two_requests(f5):
    f5.reset_requests()
    members = info(f5, pool="web")
    assert sorted(name for dummy, name in members) == ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
    counts = f5.requests()["counts"]
    tm = dict((k, v) for k, v in counts.items() if " /mgmt/tm/" in k)
    assert tm == {"GET /mgmt/tm/ltm/pool/~Common~web/members": 1,
                  "GET /mgmt/tm/ltm/pool/~Common~web/members/stats": 1}
    everything = info(f5)
    assert ("/Common/api", "10.0.0.2:80") in everything and ("/Common/app/web", "10.0.0.1:80") in everything
    assert not any(pool.startswith("/DMZ/") for pool, dummy in everything)
    filtered = info(f5, address="10.0.0.2")
    assert sorted(filtered) == [("/Common/api", "10.0.0.2:80"), ("/Common/app/web", "10.0.0.2:80"),
                                ("/Common/web", "10.0.0.2:80")]


def test_info_unknown_pool_and_partition(f5):
    from helpers import run_module
    from conftest import conn
    result = run_module("f5_pool_member_info", conn(f5, pool="nope"))
    assert result.failed and result["msg"].startswith("pool /Common/nope: not found on F5 127.0.0.1:")
    result = run_module("f5_pool_member_info", conn(f5, partition="Nope"))
    assert result.failed and result["msg"].startswith("partition Nope: not found")


def test_bad_input_before_any_request(f5):
    f5.reset_requests()
    for args in (dict(pool="web pool", name="10.0.0.1:80"), dict(pool="web", name="10.0.0.1:80;x"),
                 dict(pool="web", address="not-an-ip", port=80), dict(pool="web", name="10.0.0.1:80", port=81)):
        result = run(f5, state="drained", **args)
        assert result.failed, args
    assert f5.requests()["total"] == 0
    result = run(f5, pool="web", state="drained")
    assert result.failed and "one of the following is required: name, address" in result["msg"]
