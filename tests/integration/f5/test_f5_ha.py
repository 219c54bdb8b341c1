# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HA pairs, against two emulated devices in one sync-failover device group
(lab/f5_emulator/ha.py, from F5's documented behaviour): bigip1 on 127.0.0.1
(active) and bigip2 on 127.0.0.2 (standby), one port.

A member's state is configuration: with manual sync the peer does not get a
drain unless someone syncs, and a failover then hands traffic to a peer where
the member is still enabled.  The module warns (config_sync off), syncs
(config_sync on), and, when the device it talks to fails over during the wait,
follows the failover to the new active device, where the member ends up
drained either way: through the sync, or put back by the wait."""
import threading
import time

import pytest

import helpers
from conftest import DISABLED, ENABLED, cached_tokens, live_tokens, warnings
from lab.f5_emulator import F5Pair

SEED = {"pools": [{"name": "web", "members": [{"name": "10.0.0.%d:80" % i} for i in (1, 2, 3)]}]}
GROUP = "/Common/failover-dg"


@pytest.fixture
def pair(token_dir):
    """A pair with manual sync.  Afterwards only the tokens the cache keeps are alive."""
    with F5Pair(seed=SEED, drain_rate=1000, auto_sync=False) as devices:
        yield devices
        alive = set()
        for device in devices.devices:
            alive |= live_tokens(device)
        assert alive <= cached_tokens(token_dir)


@pytest.fixture
def auto_pair(token_dir):
    with F5Pair(seed=SEED, drain_rate=1000, auto_sync=True) as devices:
        yield devices


def bigip(pair, index):
    return pair.devices[index]


def stored(device, name="10.0.0.1:80"):
    found = device.member(pool="/Common/web", member=name)
    return found["session"], found["state"]


def run(pair, **args):
    conn = dict(server="127.0.0.1", server_port=pair.port, user="admin", password="admin", validate_certs=False)
    conn.update(args)
    return helpers.run_module("f5_pool_member", conn)


def wait_for(check, timeout=15.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for %s" % what)


def test_manual_sync_without_config_sync_warns_that_the_peer_lacks_the_change(pair):
    result = run(pair, pool="web", name="10.0.0.1:80", state="drained")
    assert not result.failed, result
    assert stored(bigip(pair, 0)) == DISABLED and stored(bigip(pair, 1)) == ENABLED
    assert bigip(pair, 0).ha()["sync_status"] == "Changes Pending"
    texts = warnings(result)
    assert any(w.startswith("device group %s (sync-failover, manual sync): this change is only on F5 127.0.0.1:"
                            % GROUP) and "set config_sync: true" in w for w in texts), texts


def test_config_sync_copies_the_change_to_the_peer(pair):
    bigip(pair, 0).reset_requests()
    result = run(pair, pool="web", name="10.0.0.1:80", state="drained", config_sync=True)
    assert not result.failed and not warnings(result), result
    assert stored(bigip(pair, 0)) == DISABLED and stored(bigip(pair, 1)) == DISABLED
    assert bigip(pair, 0).ha()["sync_status"] == "In Sync"
    entries = bigip(pair, 0).requests()["entries"]
    posts = [e["body"] for e in entries if (e["method"], e["path"]) == ("POST", "/mgmt/tm/cm")]
    assert posts == [{"command": "run", "utilCmdArgs": "config-sync to-group %s" % GROUP}]
    # Restoring syncs too.
    assert not run(pair, pool="web", name="10.0.0.1:80", state="present", config_sync=True).failed
    assert stored(bigip(pair, 1)) == ENABLED


def test_a_group_already_out_of_sync_is_not_synced_blindly(pair):
    assert not run(pair, pool="web", name="10.0.0.3:80", state="drained").failed      # someone's pending change
    bigip(pair, 0).reset_requests()
    result = run(pair, pool="web", name="10.0.0.1:80", state="drained", config_sync=True)
    assert not result.failed
    assert any("sync status was Changes Pending before this change, so config_sync is skipped" in w
               for w in warnings(result)), warnings(result)
    assert not [e for e in bigip(pair, 0).requests()["entries"] if e["path"] == "/mgmt/tm/cm"]
    assert stored(bigip(pair, 1)) == ENABLED


def test_automatic_sync_needs_nothing(auto_pair):
    result = run(auto_pair, pool="web", name="10.0.0.1:80", state="drained")
    assert not result.failed and not warnings(result), result
    assert stored(auto_pair.devices[1]) == DISABLED


def drain_through_a_failover(pair, at_next_stats=False, **args):
    """Drain 10.0.0.1:80 (held connections) on bigip1; fail over to bigip2 during the
    wait, connections and all (with ``at_next_stats``, exactly between the wait's
    failover-state read and its stats read); then let them end on bigip2."""
    bigip(pair, 0).set_member(pool="/Common/web", member="10.0.0.1:80", connections=4, drain_rate="hold")
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=run(pair, pool="web", name="10.0.0.1:80",
                                                                       state="drained", wait_timeout=30, **args)))
    thread.start()
    try:
        wait_for(lambda: stored(bigip(pair, 0)) == DISABLED, what="the drain on bigip1")
        time.sleep(0.5)                                   # the wait is on
        bigip(pair, 0).failover("bigip2.example.com", at_next_stats=at_next_stats)  # connections move too
        # The waiting run notices the failover at its next look and drains on bigip2;
        # how soon depends on this machine's load, so wait for that or for the run's end.
        wait_for(lambda: stored(bigip(pair, 1)) == DISABLED or not thread.is_alive(), timeout=45,
                 what="the member drained on bigip2 (or the run ended)")
        assert stored(bigip(pair, 1)) == DISABLED, ("the run ended without draining on bigip2", outcome)
        time.sleep(0.3)
        bigip(pair, 1).set_member(pool="/Common/web", member="10.0.0.1:80", drain_rate=50)
    finally:
        thread.join(60)
    return outcome["result"]


def test_failover_mid_drain_after_config_sync(pair):
    result = drain_through_a_failover(pair, config_sync=True)
    assert not result.failed, result
    assert result["reasserted"] == 0                       # the sync had put it there already
    assert stored(bigip(pair, 1)) == DISABLED
    assert bigip(pair, 1).member(pool="/Common/web", member="10.0.0.1:80")["connections"] == 0
    assert any("following the failover to bigip2.example.com (F5 127.0.0.2:" in w for w in warnings(result)), \
        warnings(result)


@pytest.mark.parametrize("at_next_stats", [False, True], ids=["any-moment", "between-two-reads"])
def test_failover_mid_drain_without_sync_is_repaired_on_the_new_active(pair, at_next_stats):
    # between-two-reads: the stats the wait reads come from the new standby, empty;
    # they must not end the wait while the connections go on on bigip2.
    result = drain_through_a_failover(pair, at_next_stats=at_next_stats)
    assert not result.failed, result
    # bigip2 had its own (enabled) copy of the member: the wait put it back there.
    assert result["reasserted"] == 1
    assert stored(bigip(pair, 1)) == DISABLED
    assert result["members"][0]["state"] == "drained" and result["members"][0]["sessions"] == 0
    texts = warnings(result)
    assert any("following the failover" in w for w in texts), texts
    assert any("found present" in w and "F5 failed over: F5 127.0.0.2:" in w for w in texts), texts
