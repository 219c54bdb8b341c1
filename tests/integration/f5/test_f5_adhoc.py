# -*- coding: utf-8 -*-
"""Through the real ``ansible`` command, as an operator toggles a member ad hoc,
with the connection from F5_* environment variables (as AWX credentials inject)."""
import pytest

import helpers
from conftest import DISABLED, ENABLED, stored

pytestmark = pytest.mark.usefixtures("clean_env")


def f5_env(f5):
    return dict(F5_SERVER="127.0.0.1", F5_SERVER_PORT=str(f5.port), F5_USER="admin", F5_PASSWORD="admin",
                F5_VALIDATE_CERTS="false")


def test_adhoc_drain_check_and_restore(f5):
    env = f5_env(f5)
    checked = helpers.run_adhoc("f5_pool_member", dict(pool="web", name="10.0.0.3:80", state="drained"),
                                check=True, diff=True, env=env)
    assert checked.rc == 0 and checked["changed"] is True, checked
    assert stored(f5, "web", "10.0.0.3:80") == ENABLED
    done = helpers.run_adhoc("f5_pool_member", dict(pool="web", name="10.0.0.3:80", state="drained"), env=env)
    assert done.rc == 0 and done["changed"] is True and done["members"][0]["state"] == "drained", done
    assert stored(f5, "web", "10.0.0.3:80") == DISABLED
    listed = helpers.run_adhoc("f5_pool_member_info", dict(pool="web", address="10.0.0.3"), env=env)
    assert listed.rc == 0 and [m["admin_state"] for m in listed["members"]] == ["disabled"]
    back = helpers.run_adhoc("f5_pool_member", dict(name="10.0.0.3:80", state="present"), env=env)
    assert back.rc == 0 and back["changed"] is True
    assert stored(f5, "web", "10.0.0.3:80") == ENABLED


def test_adhoc_failure_is_one_line(f5):
    failed = helpers.run_adhoc("f5_pool_member", dict(pool="nope", name="10.0.0.3:80", state="drained"),
                               env=f5_env(f5))
    assert failed.rc != 0 and failed.get("failed") is True
    assert "\n" not in failed["msg"] and failed["msg"].startswith("pool /Common/nope: not found")
