# -*- coding: utf-8 -*-
"""Waiting: the drain must not return before the member's connections reach the
threshold, must notice promptly once they have, waits on several pools together,
and on timeout fails (or continues, or forces) leaving the member drained.

The emulator's connections fall linearly at a per-member drain rate once the
member stops taking new connections (1 connection = 1/rate seconds)."""
import threading
import time

from conftest import DISABLED, ENABLED, FORCED, run, stored, warnings

# Polling starts at 0.05 s and backs off to poll_interval (the module's
# default, 0.5 s): the goal is seen within one interval of being reached, plus
# the time the module takes for a request.  That time is this machine's, so it
# is measured in each run (request_latency) rather than assumed.
POLL_INTERVAL = 0.5


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


def request_latency(f5, whole_run=False):
    """The longest gap between two of the module's requests before its first
    configuration write (all of them when it writes nothing, or with
    ``whole_run``), from the emulator's log: there the module never sleeps, so
    a gap is what one request costs it on this machine, now."""
    entries = [e for e in f5.requests()["entries"] if e["path"].startswith("/mgmt/")]
    writes = [i for i, e in enumerate(entries) if e["method"] != "GET" and "/ltm/" in e["path"]]
    times = [e["time"] for e in entries[:writes[0] + 1 if writes and not whole_run else len(entries)]]
    return max([b - a for a, b in zip(times, times[1:])] + [0.01])


def write_time(f5):
    """When the emulator applied the module's first configuration write."""
    return next(e["time"] for e in f5.requests()["entries"] if e["method"] != "GET" and "/ltm/" in e["path"])


def assert_waited(f5, result, goal):
    """The goal was reached GOAL seconds after the module's write: the module
    waited for it (its clock starts at most one request after the write), and
    saw it within one poll interval plus two of its requests."""
    latency = request_latency(f5)
    low, high = goal - latency, goal + POLL_INTERVAL + 2 * latency
    assert low <= result["waited"] <= high, (
        "waited %.3f s, outside %.3f-%.3f s (the goal came %.2f s after the write; one request takes the module up "
        "to %.3f s here)" % (result["waited"], low, high, goal, latency))


def assert_no_wait(f5, result):
    """Nothing to wait for: no poll interval slept, only the one look that
    shows it (two requests' time).  A request's cost is taken over the whole
    run here: before a write there may be a single gap to measure, and one
    sample on a loaded machine says little; any sleep would be a gap of a
    poll interval, which the first bound catches."""
    latency = request_latency(f5, whole_run=True)
    assert result["waited"] < POLL_INTERVAL, "waited %.3f s: a poll interval with nothing to wait for" % result["waited"]
    assert result["waited"] <= 2 * latency, "waited %.3f s with nothing to wait for (a request takes %.3f s here)" % (
        result["waited"], latency)


def test_drain_waits_until_connections_are_gone_and_returns_promptly(f5):
    load(f5, "web", "10.0.0.1:80", connections=6, rate=4)        # 0 after 1.5 s
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert not result.failed, result
    assert result["changed"] is True
    assert_waited(f5, result, 1.5)
    assert result["members"][0]["sessions"] == 0 and result["members"][0]["connections"] == 0
    assert "goal reached after" in result["msg"]
    # A rerun is unchanged and returns at once: nothing left to wait for.
    f5.reset_requests()
    again = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert again["changed"] is False
    assert_no_wait(f5, again)


def test_sessions_count_as_well_as_connections(f5):
    load(f5, "web", "10.0.0.1:80", connections=1, rate=4, sessions=6)     # curSessions 0 after 1.5 s
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert_waited(f5, result, 1.5)


def test_drain_threshold(f5):
    load(f5, "web", "10.0.0.1:80", connections=10, rate=4)       # <= 4 after 1.5 s
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained", drain_threshold=4)
    assert_waited(f5, result, 1.5)
    assert 0 < result["members"][0]["sessions"] <= 4


def test_member_in_several_pools_is_waited_on_together(f5):
    load(f5, "web", "10.0.0.1:80", connections=2, rate=2)        # 1 s
    load(f5, "api", "10.0.0.1:80", connections=5, rate=2)        # 2.5 s
    f5.reset_requests()
    result = run(f5, name="10.0.0.1:80", state="drained", min_active=0)
    assert not result.failed, result
    assert sorted(m["container"] for m in result["members"]) == ["/Common/api", "/Common/app/web", "/Common/web"]
    # As long as the slowest pool (2.5 s), not the sum (3.5 s).
    assert_waited(f5, result, 2.5)
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
    assert 1.0 <= result["waited"] <= 1.0 + POLL_INTERVAL + 2 * request_latency(f5), result["waited"]
    plain = run(f5, check=True, pool="web", name="10.0.0.2:80", state="drained")
    assert result.elapsed < 1.0 + POLL_INTERVAL + 2 * plain.elapsed, (result.elapsed, plain.elapsed)


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
    assert_waited(f5, result, 1.0)


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
    # The monitor turns up 1 s after the module enabled the member (however
    # long the module took to start and get there).
    stop, flipped = threading.Event(), []

    def monitor_up_after_the_enable():
        while not stop.is_set():
            if any(e["method"] == "PATCH" for e in f5.requests()["entries"]):
                time.sleep(1.0)
                f5.set_member(pool="/Common/web", member="10.0.0.1:80", health="up")
                flipped.append(time.time())  # the emulator's clock
                return
            time.sleep(0.02)
    flipper = threading.Thread(target=monitor_up_after_the_enable, daemon=True)
    flipper.start()
    try:
        result = run(f5, pool="web", name="10.0.0.1:80", state="present")
    finally:
        stop.set()
        flipper.join()
    assert not result.failed, result
    assert flipped, "the module returned before the monitor turned up"
    assert_waited(f5, result, flipped[0] - write_time(f5))
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
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="present")
    assert result["members"][0]["health"] == "unknown"
    assert_no_wait(f5, result)


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
    assert since_write(f5) >= 0.95, since_write(f5)
    assert_waited(f5, result, 1.0)
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
