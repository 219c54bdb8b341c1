# -*- coding: utf-8 -*-
"""transport: soap -- the same states through bigsuds and iControl's LocalLB.Pool
calls, against the emulator's SOAP endpoint (its own minimal WSDL)."""
import pytest

import helpers
from conftest import DISABLED, ENABLED, FORCED, conn, stored

pytestmark = pytest.mark.usefixtures("clean_env")


def soap(f5, check=False, env=None, **args):
    return helpers.run_module("f5_pool_member", conn(f5, transport="soap", **args), check=check, env=env)


def soap_info(f5, **args):
    result = helpers.run_module("f5_pool_member_info", conn(f5, transport="soap", **args))
    assert not result.failed, result
    return dict(((m["container"], m["name"]), m) for m in result["members"])


def cycle(f5, args, before, after, state_before, state_after):
    pool = args["pool"]
    name = args["name"]
    checked = soap(f5, check=True, **args)
    assert not checked.failed and checked["changed"] is True, checked
    assert [(m["state_before"], m["state"]) for m in checked["members"]] == [(state_before, state_after)]
    assert stored(f5, pool, name) == before
    done = soap(f5, **args)
    assert not done.failed and done["changed"] is True, done
    assert stored(f5, pool, name) == after
    assert soap(f5, **args)["changed"] is False
    return done


def test_soap_drained_present_absent(f5):
    cycle(f5, dict(pool="web", name="10.0.0.1:80", state="drained"), ENABLED, DISABLED, "present", "drained")
    assert soap_info(f5, pool="web")[("/Common/web", "10.0.0.1:80")]["admin_state"] == "disabled"
    cycle(f5, dict(pool="web", name="10.0.0.1:80", state="present"), DISABLED, ENABLED, "drained", "present")
    cycle(f5, dict(pool="web", name="10.0.0.1:80", state="absent"), ENABLED, None, "present", "absent")
    assert "/Common/10.0.0.1" in [n["fullPath"] for n in f5.dump()["nodes"]]    # the node stays


def test_soap_forced_offline_and_add(f5):
    cycle(f5, dict(pool="web", name="10.0.0.2:80", state="drained", drain_mode="forced_offline"),
          ENABLED, FORCED, "present", "drained")
    cycle(f5, dict(pool="web", name="10.0.0.7:80", state="present"), None, ENABLED, "absent", "present")


def test_soap_waits_for_connections(f5):
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", connections=4, drain_rate=4)     # 1 s
    result = soap(f5, pool="web", address="10.0.0.1", port=80, state="drained")
    assert not result.failed, result
    # It saw the connections end (a drain of 1 s from the write) and noticed at once.
    assert result["members"][0]["connections"] == 0 and result.elapsed >= 0.95
    assert result["waited"] <= 1.6, result["waited"]


def test_soap_every_pool_of_the_partition(f5):
    result = soap(f5, name="10.0.0.2:80", state="drained", min_active=0)
    assert sorted(m["container"] for m in result["members"]) == ["/Common/api", "/Common/app/web", "/Common/web"]
    listed = soap_info(f5)
    assert ("/Common/web6", "2001:db8::10.443") in listed
    assert listed[("/Common/web6", "2001:db8::10.443")]["address"] == "2001:db8::10"


def test_soap_errors(f5):
    result = soap(f5, pool="nope", name="10.0.0.1:80", state="drained")
    assert result.failed and result["msg"].startswith("pool /Common/nope: not found on F5 127.0.0.1:")
    assert "The requested Pool (/Common/nope) was not found." in result["msg"]
    result = soap(f5, password="wrong", pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed and "user admin was refused" in result["msg"]
    result = soap(f5, validate_certs=True, pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed and "TLS certificate verification failed" in result["msg"]
    result = soap(f5, pool="web", name="10.0.0.1:80", state="present", weight=3)
    assert result.failed and "needs transport: rest" in result["msg"]
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED
    # The CA bundle from the environment is honoured for SOAP too.
    ok = soap(f5, validate_certs=True, pool="web", name="10.0.0.1:80", state="drained",
              env=dict(REQUESTS_CA_BUNDLE=f5.ca_cert))
    assert not ok.failed and stored(f5, "web", "10.0.0.1:80") == DISABLED
