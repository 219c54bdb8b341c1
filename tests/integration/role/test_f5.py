# -*- coding: utf-8 -*-
"""The same role with two bindings per node, HAProxy and F5 (the emulator in
lab/f5_emulator), under load: each node is drained on both, waited on both,
deployed and restored on both, with no failed request."""

import pytest

from conftest import admin_states, assert_no_failures, playbook

from lab.f5_emulator import F5Emulator

ALL = ["web1", "web2"]
SEED = {"pools": [{"name": "web", "members": [
    {"name": "10.0.0.%d:80" % n, "connections": 6, "sessions": 6} for n in range(1, 3)]}]}


@pytest.fixture
def f5():
    emulator = F5Emulator(seed=SEED, drain_rate=10)      # 6 connections: a 0.6 s drain
    emulator.start()
    yield emulator
    emulator.stop()


def test_haproxy_and_f5_bindings_fail_no_request(make_lab, f5):
    lab = make_lab(instances=2)
    bindings = [
        {"type": "haproxy", "delegate_to": "lb1", "backend": "app", "server": "{{ inventory_hostname }}",
         "socket": "{{ hostvars['lb1'].lab_haproxy_socket }}"},
        {"type": "f5", "pool": "web", "address": "10.0.0.{{ inventory_hostname[3:] }}", "port": 80,
         "provider": {"server": "127.0.0.1", "server_port": f5.port, "user": "admin", "password": "admin",
                      "validate_certs": False}},
    ]
    f5.reset_requests()
    lab.start_load()
    run = playbook(lab, extra_vars={"rolling_deploy_bindings": bindings})
    load = lab.stop_load()

    assert run.rc == 0, run
    assert_no_failures(load)
    assert lab.versions() == dict.fromkeys(ALL, "v2")
    assert admin_states(lab) == dict.fromkeys(ALL, "READY")
    members = {m["name"]: m for m in f5.members(pool="web")}
    assert sorted(members) == ["10.0.0.1:80", "10.0.0.2:80"]
    assert {m["session"] for m in members.values()} == {"user-enabled"}
    # Each member was disabled, then enabled again, through iControl REST.
    writes = [(e["path"], (e.get("body") or {}).get("session")) for e in f5.requests()["entries"]
              if e["method"] == "PATCH" and "/members/" in e["path"]]
    for n in (1, 2):
        mine = [session for path, session in writes if "10.0.0.%d:80" % n in path]
        assert mine == ["user-disabled", "user-enabled"], writes
    assert "admin" not in run.output.replace("admin_state", "")    # the password is never shown
