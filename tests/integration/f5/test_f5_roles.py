# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Least privilege: F5's Operator role may enable and disable pool members and
nothing else (the emulator enforces it, answering mcpd's ``01070822:3: Access
Denied`` as devices do).  Every path that only toggles a member's state works
with it; a path that needs more fails with PermissionDeniedError naming the
missing permission, before it changes anything it cannot finish."""
import helpers
from conftest import DISABLED, ENABLED, FORCED, conn, run, stored, warnings, writes
from lab.f5_emulator import F5Pair


# Passwords that occur in no message: Ansible masks no_log values wherever they appear.
OPERATOR = dict(user="op", password="Op-pw-71")


def as_operator(f5, **args):
    return run(f5, **dict(OPERATOR, **args))


def grant(f5):
    f5.configure(users={"op": OPERATOR["password"], "viewer": "Vw-pw-72"},
                 roles={"op": "operator", "viewer": "guest"})


def test_an_operator_drains_forces_and_restores(f5):
    grant(f5)
    done = as_operator(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert not done.failed and done["changed"] is True, done
    assert stored(f5, "web", "10.0.0.1:80") == DISABLED
    forced = as_operator(f5, pool="web", name="10.0.0.1:80", state="drained", drain_mode="forced_offline")
    assert not forced.failed and stored(f5, "web", "10.0.0.1:80") == FORCED
    back = as_operator(f5, name="10.0.0.1:80", state="present")          # every pool of the partition
    assert not back.failed and stored(f5, "web", "10.0.0.1:80") == ENABLED
    # on_timeout force is a toggle too (forced offline)
    f5.set_member(pool="/Common/web", member="10.0.0.2:80", connections=3, drain_rate="hold")
    ended = as_operator(f5, pool="web", name="10.0.0.2:80", state="drained", wait_timeout=0.5, on_timeout="force")
    assert not ended.failed and stored(f5, "web", "10.0.0.2:80") == FORCED, ended


def test_what_an_operator_may_not_do_names_the_missing_permission(f5):
    grant(f5)
    ratio = as_operator(f5, pool="web", name="10.0.0.1:80", state="present", weight=5)
    assert ratio.failed and ratio["error_type"] == "PermissionDeniedError"
    assert ratio["msg"].startswith("member 10.0.0.1:80 in pool /Common/web: user op lacks modify access to "
                                   "pool_member on F5 127.0.0.1:")
    assert "drop weight" in ratio["msg"] and "\n" not in ratio["msg"]
    added = as_operator(f5, pool="web", address="10.0.0.7", port=80, state="present")
    assert added.failed and added["error_type"] == "PermissionDeniedError"
    assert "lacks create access to pool_member" in added["msg"] and "so it may not add members" in added["msg"]
    assert stored(f5, "web", "10.0.0.7:80") is None
    removed = as_operator(f5, pool="web", name="10.0.0.3:80", state="absent")
    assert removed.failed and removed["error_type"] == "PermissionDeniedError"
    assert "lacks delete access to pool_member" in removed["msg"] and "use state: drained" in removed["msg"]
    assert stored(f5, "web", "10.0.0.3:80") == DISABLED            # drained, as far as the role goes
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED


def test_a_read_only_user_changes_nothing(f5):
    grant(f5)
    f5.reset_requests()
    result = run(f5, user="viewer", password="Vw-pw-72", pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed and result["error_type"] == "PermissionDeniedError"
    assert "lacks modify access to pool_member" in result["msg"]
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED
    assert [m for m, _p in writes(f5)] == ["PATCH"]


def test_an_operator_over_soap(f5):
    grant(f5)
    soap = dict(OPERATOR, transport="soap")
    done = helpers.run_module("f5_pool_member", conn(f5, pool="web", name="10.0.0.1:80", state="drained", **soap))
    assert not done.failed, done
    assert stored(f5, "web", "10.0.0.1:80") == DISABLED
    added = helpers.run_module("f5_pool_member", conn(f5, pool="web", name="10.0.0.7:80", state="present", **soap))
    assert added.failed and added["error_type"] == "PermissionDeniedError"
    assert "lacks create access to pool_member" in added["msg"]


def test_an_operator_cannot_sync_the_group_and_is_told(token_dir):
    seed = {"users": {"op": OPERATOR["password"]}, "roles": {"op": "operator"},
            "pools": [{"name": "web", "members": [{"name": "10.0.0.%d:80" % i} for i in (1, 2, 3)]}]}
    with F5Pair(seed=seed, drain_rate=1000) as pair:
        args = dict(OPERATOR, server="127.0.0.1", server_port=pair.port, validate_certs=False)
        synced = helpers.run_module("f5_pool_member", dict(args, pool="web", name="10.0.0.1:80", state="drained",
                                                           config_sync=True))
        assert synced.failed and synced["error_type"] == "PermissionDeniedError"
        assert "so it may not run a config sync" in synced["msg"] and "config_sync: false" in synced["msg"]
        assert pair.devices[0].member(pool="/Common/web", member="10.0.0.1:80")["session"] == "user-disabled"
        # Without config_sync the operator's drain works (and is warned about).
        plain = helpers.run_module("f5_pool_member", dict(args, pool="web", name="10.0.0.2:80", state="drained"))
        assert not plain.failed, plain
        assert any("manual sync" in w for w in warnings(plain))
