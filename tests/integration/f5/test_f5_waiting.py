# -*- coding: utf-8 -*-
"""Waiting: the drain must not return before the member's connections reach the
threshold, must notice promptly once they have, waits on several pools together,
and on timeout fails (or continues, or forces) leaving the member drained.

The emulator's connections fall linearly at a per-member drain rate once the
member stops taking new connections (1 connection = 1/rate seconds)."""
import threading
import time

from conftest import DISABLED, ENABLED, FORCED, run, stored, warnings

# Polling starts at 0.05 s and backs off to poll_interval (0.5 s): the goal is
# seen within one interval, plus a module start-up and a few requests.
PROMPT = 0.6


def since_write(f5):
    """Seconds from the first PATCH of a member to the last request of the run, on
    the emulator's own clock: when the drain started, and when the run last looked.
    (``waited`` starts after the write's floor check, which a loaded machine slows.)"""
    entries = [e for e in f5.requests()["entries"] if e["path"].startswith("/mgmt/tm/")]
    first = [e["time"] for e in entries if e["method"] == "PATCH"][0]
    return entries[-1]["time"] - first


def load(f5, pool, name, connections, rate, sessions=None):
    extra = {} if sessions is None else {"sessions": sessions}
    f5.set_member(pool="/Common/" + pool, member=name, connections=connections, drain_rate=rate, **extra)


def test_drain_waits_until_connections_are_gone_and_returns_promptly(f5):
    load(f5, "web", "10.0.0.1:80", connections=6, rate=4)        # 0 after 1.5 s
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert not result.failed, result
    assert result["changed"] is True
    assert since_write(f5) >= 1.45 and result["waited"] <= 1.5 + PROMPT, (since_write(f5), result["waited"])
    assert result["members"][0]["sessions"] == 0 and result["members"][0]["connections"] == 0
    assert "goal reached after" in result["msg"]
    # A rerun is unchanged and returns at once: nothing left to wait for.
    again = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert again["changed"] is False and again["waited"] < 0.3


def test_sessions_count_as_well_as_connections(f5):
    load(f5, "web", "10.0.0.1:80", connections=1, rate=4, sessions=6)     # curSessions 0 after 1.5 s
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert result["members"][0]["current_sessions"] == 0
    assert since_write(f5) >= 1.45 and result["waited"] <= 1.5 + PROMPT, (since_write(f5), result["waited"])


def test_drain_threshold(f5):
    load(f5, "web", "10.0.0.1:80", connections=10, rate=4)       # <= 4 after 1.5 s
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained", drain_threshold=4)
    assert since_write(f5) >= 1.45 and result["waited"] <= 1.5 + PROMPT, (since_write(f5), result["waited"])
    assert 0 < result["members"][0]["sessions"] <= 4


def test_member_in_several_pools_is_waited_on_together(f5):
    load(f5, "web", "10.0.0.1:80", connections=2, rate=2)        # 1 s
    load(f5, "api", "10.0.0.1:80", connections=5, rate=2)        # 2.5 s
    f5.reset_requests()
    result = run(f5, name="10.0.0.1:80", state="drained", min_active=0)
    assert not result.failed, result
    assert sorted(m["container"] for m in result["members"]) == ["/Common/api", "/Common/app/web", "/Common/web"]
    # As long as the slowest pool (2.5 s), not the sum (3.5 s).
    assert since_write(f5) >= 2.45 and result["waited"] <= 2.5 + PROMPT, (since_write(f5), result["waited"])
    assert all(m["sessions"] == 0 for m in result["members"])


def test_no_wait(f5):
    load(f5, "web", "10.0.0.1:80", connections=6, rate="hold")
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained", wait=False)
    assert not result.failed and result["waited"] == 0
    assert result["members"][0]["sessions"] == 6 and stored(f5, "web", "10.0.0.1:80") == DISABLED


def test_timeout_fails_and_leaves_the_member_drained(f5):
    load(f5, "web", "10.0.0.1:80", connections=5, rate="hold")
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained", wait_timeout=1)
    assert result.failed
    assert result["msg"] == ("member 10.0.0.1:80: not drained after wait_timeout=1s (/Common/web/10.0.0.1:80 5 "
                             "sessions); giving up, raise wait_timeout or use on_timeout: force")
    assert result["changed"] is True and result["members"][0]["state"] == "drained"
    assert stored(f5, "web", "10.0.0.1:80") == DISABLED
    # It gave up at wait_timeout; nothing else took long (measured against a run that does not wait).
    assert 1.0 <= result["waited"] <= 1.0 + PROMPT, result["waited"]
    plain = run(f5, check=True, pool="web", name="10.0.0.2:80", state="drained")
    assert result.elapsed < 1.0 + PROMPT + 2 * plain.elapsed, (result.elapsed, plain.elapsed)


def test_timeout_continue_warns(f5):
    load(f5, "web", "10.0.0.1:80", connections=5, rate="hold")
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained", wait_timeout=0.5, on_timeout="continue")
    assert not result.failed and result["changed"] is True
    assert any("5 sessions); continuing" in w for w in warnings(result)), result
    assert stored(f5, "web", "10.0.0.1:80") == DISABLED


def test_timeout_force_forces_offline_and_says_connections_stay(f5):
    load(f5, "web", "10.0.0.1:80", connections=5, rate="hold")
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained", wait_timeout=0.5, on_timeout="force")
    assert not result.failed, result
    assert stored(f5, "web", "10.0.0.1:80") == FORCED
    assert "forced offline" in result["msg"] and "cannot end open connections" in result["msg"]
    assert "5 still open" in result["msg"]


def test_absent_drains_first_then_deletes(f5):
    load(f5, "web", "10.0.0.1:80", connections=3, rate=3)        # 1 s
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="absent")
    assert not result.failed and result["changed"] is True
    assert stored(f5, "web", "10.0.0.1:80") is None
    entries = [e for e in f5.requests()["entries"] if e["method"] in ("PATCH", "DELETE")
               and "/ltm/pool/" in e["path"]]
    assert [e["method"] for e in entries] == ["PATCH", "DELETE"]
    assert entries[0]["body"] == {"session": "user-disabled", "state": "user-up"}
    assert entries[1]["time"] - entries[0]["time"] >= 0.95           # deleted only once drained
    assert result["waited"] <= 1 + PROMPT


def test_absent_timeout_fails_before_deleting(f5):
    load(f5, "web", "10.0.0.1:80", connections=3, rate="hold")
    result = run(f5, pool="web", name="10.0.0.1:80", state="absent", wait_timeout=0.5)
    assert result.failed and "not drained after wait_timeout=0.5s" in result["msg"]
    assert stored(f5, "web", "10.0.0.1:80") == DISABLED                # drained, not deleted


def test_absent_force_removes_anyway_with_a_warning(f5):
    load(f5, "web", "10.0.0.1:80", connections=3, rate="hold")
    result = run(f5, pool="web", name="10.0.0.1:80", state="absent", wait_timeout=0.5, on_timeout="force")
    assert not result.failed, result
    assert stored(f5, "web", "10.0.0.1:80") is None
    texts = warnings(result)
    assert any("(/Common/web/10.0.0.1:80 3 sessions); removed anyway" in w and "cannot end open connections" in w
               for w in texts), texts


def test_present_waits_for_the_monitor(f5):
    f5.set_pool_monitor("web", "/Common/http")
    assert not run(f5, pool="web", name="10.0.0.1:80", state="drained").failed
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", health="down")
    f5.reset_requests()
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=run(f5, pool="web", name="10.0.0.1:80",
                                                                       state="present")))
    thread.start()
    try:
        # The monitor says up half a second after the member was enabled.
        deadline = time.monotonic() + 30
        while stored(f5, "web", "10.0.0.1:80") != ENABLED and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)
        f5.set_member(pool="/Common/web", member="10.0.0.1:80", health="up")
    finally:
        thread.join(60)
    result = outcome["result"]
    assert not result.failed, result
    assert 0.45 <= result["waited"] <= 0.5 + PROMPT, result["waited"]
    assert result["members"][0]["health"] == "up"
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED


def test_present_timeout_names_the_health(f5):
    f5.set_pool_monitor("web", "/Common/http")
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", health="down")
    result = run(f5, pool="web", name="10.0.0.1:80", state="present", wait_timeout=0.5)
    assert result.failed
    assert "not usable after wait_timeout=0.5s (/Common/web/10.0.0.1:80 health down)" in result["msg"]


def test_present_without_monitor_is_usable_at_once(f5):
    assert not run(f5, pool="web", name="10.0.0.1:80", state="drained").failed
    result = run(f5, pool="web", name="10.0.0.1:80", state="present")
    assert result["members"][0]["health"] == "unknown" and result["waited"] < 0.3


# ---------------------------------------------------------------- the persistence ladder (K13310)
# A disabled member still takes the connections of clients with a persistence
# record; the emulator's "persistent" members keep their load while disabled and
# drain once forced offline.

def test_persistent_clients_keep_a_disabled_member_busy_until_it_is_forced_offline(f5):
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", connections=4, drain_rate=8, persistent=True)
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained", force_offline_after=0.5, wait_timeout=10)
    assert not result.failed, result
    assert result["drain_ended_by"] == "forced_offline"
    assert stored(f5, "web", "10.0.0.1:80") == FORCED
    # 0.5 s disabled (the load holds), then 4 connections at 8 per second.
    assert since_write(f5) >= 0.95 and result["waited"] <= 1.0 + 2 * PROMPT, (since_write(f5), result["waited"])
    assert "disabled for 0.5s, /Common/web/10.0.0.1:80 4 sessions still open (persistence), so forced offline, " \
           "which ended the drain" in result["msg"], result["msg"]
    assert result["members"][0]["state_before"] == "present" and result["members"][0]["sessions"] == 0


def test_without_persistence_the_ladder_stops_at_disabled(f5):
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", connections=4, drain_rate=8)
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained", force_offline_after=5)
    assert not result.failed and result["drain_ended_by"] == "disabled", result
    assert stored(f5, "web", "10.0.0.1:80") == DISABLED
    assert result["msg"].endswith("; the drain ended while disabled")


def test_the_ladder_ends_with_on_timeout(f5):
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", connections=4, drain_rate="hold", persistent=True)
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained", force_offline_after=0.3, wait_timeout=1,
                 on_timeout="continue")
    assert not result.failed and result["drain_ended_by"] == "on_timeout", result
    assert stored(f5, "web", "10.0.0.1:80") == FORCED
    assert any("4 sessions); continuing" in w for w in warnings(result)), warnings(result)


def test_the_ladder_fails_on_timeout_and_absent_removes_last(f5):
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", connections=4, drain_rate="hold", persistent=True)
    result = run(f5, pool="web", name="10.0.0.1:80", state="absent", force_offline_after=0.3, wait_timeout=1)
    assert result.failed and result["error_type"] == "WaitTimeoutError", result
    assert stored(f5, "web", "10.0.0.1:80") == FORCED                   # forced offline, not deleted
    f5.set_member(pool="/Common/web", member="10.0.0.2:80", connections=4, drain_rate=8, persistent=True)
    removed = run(f5, pool="web", name="10.0.0.2:80", state="absent", force_offline_after=0.3, wait_timeout=10,
                  min_active=0)
    assert not removed.failed and removed["drain_ended_by"] == "forced_offline", removed
    assert stored(f5, "web", "10.0.0.2:80") is None
    assert removed["members"][0]["state_before"] == "present" and removed["members"][0]["state"] == "absent"
