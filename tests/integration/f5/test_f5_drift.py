# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A wait is for a state on F5 too: a member that another client re-enables
while the drain waits is seen (its stats say so, its configuration confirms
it), put back and counted in ``reasserted``; with ``reassert: false`` the run
fails at once with StateLostError.  "Another client" is a second iControl REST
client, as another controller or an operator's script would be."""
import base64
import json
import ssl
import threading
import time
import urllib.request

import pytest

from conftest import DISABLED, ENABLED, run, stored, warnings


def other_client_patch(f5, pool, name, body):
    """Somebody else's change: a PATCH over iControl REST with basic auth."""
    url = "%s/mgmt/tm/ltm/pool/~Common~%s/members/~Common~%s" % (f5.url, pool, name)
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="PATCH", headers={
        "Content-Type": "application/json",
        "Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()})
    with urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=10) as answer:
        assert answer.status == 200


def wait_for(check, timeout=15.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for %s" % what)


def drain_in_background(f5, **args):
    outcome = {}

    def drain():
        outcome["result"] = run(f5, pool="web", name="10.0.0.1:80", state="drained", **args)
    thread = threading.Thread(target=drain)
    thread.start()
    return thread, outcome


def test_a_member_re_enabled_mid_drain_is_put_back(f5):
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", connections=5, drain_rate="hold")
    thread, outcome = drain_in_background(f5, wait_timeout=30)
    try:
        wait_for(lambda: stored(f5, "web", "10.0.0.1:80") == DISABLED, what="the drain's write")
        time.sleep(0.3)                                  # the wait is on
        other_client_patch(f5, "web", "10.0.0.1:80", {"session": "user-enabled", "state": "user-up"})
        wait_for(lambda: stored(f5, "web", "10.0.0.1:80") == DISABLED, what="the member put back")
        f5.set_member(pool="/Common/web", member="10.0.0.1:80", drain_rate=50)   # now the sessions end
    finally:
        thread.join(60)
    result = outcome["result"]
    assert not result.failed, result
    assert result["reasserted"] == 1
    assert result["members"][0]["state"] == "drained" and result["members"][0]["sessions"] == 0
    assert "goal reached" in result["msg"]
    texts = warnings(result)
    assert any("found present" in w and "set drained again" in w and "was not failed over" in w
               for w in texts), texts
    assert stored(f5, "web", "10.0.0.1:80") == DISABLED


def test_with_reassert_off_somebody_elses_enable_fails_at_once(f5):
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", connections=5, drain_rate="hold")
    thread, outcome = drain_in_background(f5, wait_timeout=30, reassert=False)
    try:
        wait_for(lambda: stored(f5, "web", "10.0.0.1:80") == DISABLED, what="the drain's write")
        time.sleep(0.3)
        changed_at = time.monotonic()
        other_client_patch(f5, "web", "10.0.0.1:80", {"session": "user-enabled", "state": "user-up"})
    finally:
        thread.join(60)
    finished_at = time.monotonic()
    result = outcome["result"]
    assert result.failed and result["error_type"] == "StateLostError", result
    assert finished_at - changed_at < 5                   # at once, not at wait_timeout
    assert "reassert is off" in result["msg"] and "\n" not in result["msg"]
    assert result["members"][0]["state"] == "present"
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED   # left as the other client set it


@pytest.mark.parametrize("other", [{"session": "user-disabled", "state": "user-down"}])
def test_a_stricter_state_set_by_somebody_else_still_counts_as_drained(f5, other):
    # Forced offline takes even less than disabled: the drain goes on without putting anything back.
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", connections=3, drain_rate="hold")
    thread, outcome = drain_in_background(f5, wait_timeout=30)
    try:
        wait_for(lambda: stored(f5, "web", "10.0.0.1:80") == DISABLED, what="the drain's write")
        other_client_patch(f5, "web", "10.0.0.1:80", other)
        f5.set_member(pool="/Common/web", member="10.0.0.1:80", drain_rate=50)
    finally:
        thread.join(60)
    result = outcome["result"]
    assert not result.failed and result["reasserted"] == 0, result
    assert result["members"][0]["admin_state"] == "forced_offline"
