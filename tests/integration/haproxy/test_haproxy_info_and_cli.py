# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""haproxy_member_info; environment fallbacks; the modules through the real
``ansible`` (ad hoc, check mode) and ``ansible-playbook`` with module_defaults."""

from __future__ import annotations

import os
import tempfile

import pytest

from helpers import run_adhoc, run_module, run_playbook


def test_info_every_backend_never_frontends(lab):
    result = run_module("haproxy_member_info", dict(socket=lab.admin_socket))
    assert not result.failed and result["changed"] is False
    keys = sorted((m["container"], m["name"]) for m in result["members"])
    assert keys == sorted([("app", "web1"), ("app", "web2"), ("app", "web3"), ("app", "shared1"),
                           ("app", "nocheck1"), ("api", "shared1"), ("api", "api1"),
                           ("static", "s1"), ("static", "s2"), ("tracking", "trk1")])
    web1 = [m for m in result["members"] if m["name"] == "web1"][0]
    host, port = lab.addr("web1")
    # The traffic counters depend on what earlier tests sent (test_haproxy_traffic_counters.py checks them).
    counters = dict((key, web1.pop(key)) for key in (
        "total_sessions", "balanced_sessions", "requests", "responses", "connection_errors",
        "response_errors", "retries", "redispatches", "response_time_ms"))
    assert all(isinstance(value, int) for key, value in counters.items() if key != "responses"), counters
    assert sorted(counters["responses"]) == ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
    assert web1 == dict(
        container="app", backend="app", name="web1", address=host, port=port, state="present", weight=1,
        sessions=0, current_sessions=0, queued=0, health="up", status="UP", admin_state=0, admin_flags=[],
        operational_state="running", check_status="L7OK", initial_weight=1, backup=False,
        health_check=True, check_rise=1, check_fall=2, tracks=None, fqdn=None, agent_check=False,
        agent_enabled=False, agent_status=None)
    trk1 = [m for m in result["members"] if m["name"] == "trk1"][0]
    assert trk1["tracks"] == "app/web2"
    # The configuration HAProxy runs with (found from its pid) keeps no state across a reload.
    state = result["server_state"]
    assert state["config"] == [str(lab.config_path)] and state["file"] is None
    assert state["kept_on_reload"] is False and state["load"]["app"] is None
    assert "backend api has no load-server-state-from-file" in state["reason"]


def test_info_reports_drain_that_show_stat_hides(lab):
    lab.set_health("web3", False)
    lab.wait_status("app", "web3", "DOWN")
    lab.send("set server app/web3 state drain")
    lab.hold("web2")
    lab.send("set server app/web2 state drain")
    info = lab.info(backend="app")
    assert (info[("app", "web3")]["state"], info[("app", "web3")]["status"],
            info[("app", "web3")]["health"]) == ("drained", "DOWN", "down")
    assert (info[("app", "web2")]["state"], info[("app", "web2")]["sessions"]) == ("drained", 1)


@pytest.mark.one_version
def test_info_filters(lab):
    by_name = lab.info(server="shared1")
    assert sorted(by_name) == [("api", "shared1"), ("app", "shared1")]
    host, port = lab.addr("web3")
    by_address = lab.info(address="%s:%d" % (host, port))
    assert sorted(by_address) == [("app", "web3")]
    one = lab.info(backend=["api"])
    assert sorted(one) == [("api", "api1"), ("api", "shared1")]


@pytest.mark.parametrize("transport", ["tcp", "stats"])
def test_info_other_transports(lab, transport):
    lab.send("set server app/web3 state maint")
    result = run_module("haproxy_member_info", dict(lab.conn(transport), backend="app"))
    assert not result.failed
    states = dict((m["name"], m["state"]) for m in result["members"])
    assert states == {"web1": "present", "web2": "present", "web3": "absent", "shared1": "present",
                      "nocheck1": "present"}


def test_info_unknown_backend(lab):
    result = run_module("haproxy_member_info", dict(socket=lab.admin_socket, backend="nosuch"))
    assert result.failed and result["msg"].startswith("backend nosuch: not found")


@pytest.mark.one_version
def test_env_fallback_socket(lab):
    result = run_module("haproxy_member", dict(backend="app", server="web3", state="drained"),
                        env={"HAPROXY_SOCKET": lab.tcp_socket})
    assert not result.failed and result["changed"] is True
    assert lab.admin("app", "web3") == 0x08


@pytest.mark.one_version
def test_env_fallback_stats_page(lab):
    env = {"HAPROXY_STATS_URL": lab.stats_url, "HAPROXY_STATS_USER": lab.stats_user,
           "HAPROXY_STATS_PASSWORD": lab.stats_password}
    result = run_module("haproxy_member", dict(backend="app", server="web3", state="absent"), env=env)
    assert not result.failed and result["changed"] is True
    assert lab.admin("app", "web3") == 0x01
    info = run_module("haproxy_member_info", dict(backend="app", server="web3"), env=env)
    assert info["members"][0]["state"] == "absent"


@pytest.mark.one_version
def test_default_socket_path_is_named(lab):
    result = run_module("haproxy_member_info", {}, env={"HAPROXY_SOCKET": ""})
    assert result.failed and "socket /run/haproxy/admin.sock" in result["msg"]


@pytest.mark.one_version
def test_adhoc_toggle_with_check_mode(lab):
    args = dict(socket=lab.admin_socket, backend="app", server="web3", state="drained")
    planned = run_adhoc("haproxy_member", args, check=True, diff=True)
    assert planned.rc == 0 and planned["changed"] is True, planned
    assert lab.admin("app", "web3") == 0
    done = run_adhoc("haproxy_member", args)
    assert done.rc == 0 and done["changed"] is True
    assert lab.admin("app", "web3") == 0x08
    print("\n%s: one ad-hoc toggle took %.2fs" % (lab.version, done.elapsed))
    again = run_adhoc("haproxy_member", dict(args, server="web1;disable server app/web2"))
    assert again.rc != 0 and again.failed and "not a valid HAProxy name" in again["msg"]
    assert lab.admin("app", "web2") == 0


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/gentle.lb.lb:
      socket: "{{ haproxy_socket }}"
  tasks:
    - name: Drain web3
      gentle.lb.haproxy_member:
        backend: app
        server: web3
        state: drained
      register: drained

    - name: Read it back
      gentle.lb.haproxy_member_info:
        backend: app
        server: web3
      register: info

    - name: Restore it everywhere, at weight 2
      gentle.lb.haproxy_member:
        server: web3
        state: present
        weight: 2
      register: restored

    - name: Check
      ansible.builtin.assert:
        that:
          - drained is changed
          - info.members[0].state == 'drained'
          - restored is changed
          - restored.members[0].weight == 2
          - restored.members[0].status == 'UP'
"""


@pytest.mark.one_version
def test_playbook_with_module_defaults(lab):
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        handle.write(PLAYBOOK)
    try:
        proc = run_playbook(handle.name, extra_vars={"haproxy_socket": lab.admin_socket},
                            args=("-c", "local"))
    finally:
        os.unlink(handle.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=2" in proc.stdout and "failed=0" in proc.stdout
    assert lab.admin_states()[("app", "web3")] == (0, 2)


@pytest.mark.one_version
def test_task_socket_wins_over_an_injected_stats_url(lab):
    """An AWX credential exports HAPROXY_STATS_URL; a task naming its socket must still work."""
    env = {"HAPROXY_STATS_URL": "http://127.0.0.1:9/unused", "HAPROXY_STATS_USER": "u",
           "HAPROXY_STATS_PASSWORD": "p"}
    result = run_module("haproxy_member", dict(socket=lab.admin_socket, backend="app", server="web3",
                                               state="drained"), env=env)
    assert not result.failed and result["changed"] is True, result
    assert lab.admin("app", "web3") == 0x08
