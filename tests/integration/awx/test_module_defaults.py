# -*- coding: utf-8 -*-
"""Connection options set once for a play, the two ways AWX users do it:

* ``module_defaults`` with the action groups of meta/runtime.yml:
  ``group/gentle.lb.lb`` when a play talks to one kind of balancer, and the
  per-balancer groups ``group/gentle.lb.haproxy`` / ``group/gentle.lb.f5`` when
  one play talks to both (their connection options differ, and a module
  refuses options it does not have);
* environment variables, as a credential of the types in docs/awx/ injects
  them: rendered here from those files exactly as AWX renders injectors, then
  the modules run with no connection argument at all.

Against a real HAProxy (lab/haproxy_lab.py) and the F5 emulator (lab/f5_emulator).
"""

import json
import re

import pytest
import yaml

from awx_credentials import render_injectors
from helpers import run_module, run_playbook
from lab.f5_emulator import F5Emulator
from lab.haproxy_lab import HAProxyLab

F5_SEED = {"pools": [
    {"name": "web", "members": [{"name": "10.0.0.1:80"}, {"name": "10.0.0.2:80"}, {"name": "10.0.0.3:80"}]},
]}


@pytest.fixture(scope="module")
def haproxy():
    lab = HAProxyLab(version="2.6")
    lab.start()
    try:
        lab.wait_servers_up()
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def hap(haproxy):
    """The module's HAProxy, every app server READY again after the test."""
    yield haproxy
    for row in haproxy.servers_state("app"):
        if int(row["srv_admin_state"]) & 0x19:
            haproxy.send("set server app/%s state ready" % row["srv_name"])


@pytest.fixture
def f5():
    emulator = F5Emulator(seed=F5_SEED, drain_rate=1000)
    emulator.start()
    try:
        yield emulator
        active = emulator.tokens()["active"]
    finally:
        emulator.stop()
    # The modules keep one token per device and user for the next run (token_cache,
    # docs/f5.md "Tokens and requests"); more than that is a leaked login.
    assert active <= 1, "%d login token(s) left alive on the emulator" % active


def admin(lab, server):
    """HAProxy's admin state of app/<server>: READY, DRAIN or MAINT."""
    row = [r for r in lab.servers_state("app") if r["srv_name"] == server][0]
    bits = int(row["srv_admin_state"])
    return "MAINT" if bits & 0x67 else ("DRAIN" if bits & 0x18 else "READY")


def f5_session(emulator, name, pool="/Common/web"):
    return [m for m in emulator.members(pool=pool) if m["name"] == name][0]["session"]


def play(tmp_path, module_defaults, tasks, env=None):
    """Run one play on localhost; return (process, {register name: result}).
    The results come back through set_stats (a controller-side action: no
    extra module run), printed by ANSIBLE_SHOW_CUSTOM_STATS."""
    names = [t["register"] for t in tasks if "register" in t]
    body = [{
        "name": "module_defaults test",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "module_defaults": module_defaults,
        "tasks": tasks + [{
            "name": "Publish the results",
            "ansible.builtin.set_stats": {
                "data": {"results": "{{ %s }}" % ("{" + ", ".join("'%s': %s" % (n, n) for n in names) + "}")},
                "per_host": False,
            },
        }],
    }]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    proc = run_playbook(str(path), env=dict(env or {}, ANSIBLE_SHOW_CUSTOM_STATS="1", ANSIBLE_PIPELINING="1"),
                        timeout=120)
    match = re.search(r"^\tRUN: (.*)$", proc.stdout, re.M)
    return proc, (json.loads(match.group(1))["results"] if match else {})


def task(module, register, **args):
    return {"name": "%s %s" % (module, register), "gentle.lb." + module: args, "register": register}


# --------------------------------------------------------------------------
# module_defaults and the action groups


def test_lb_group_sets_the_connection_once(hap, tmp_path):
    proc, res = play(tmp_path, {"group/gentle.lb.lb": {"socket": hap.admin_socket}}, [
        task("haproxy_member", "drained", backend="app", server="web2", state="drained", wait=False),
        task("haproxy_member_info", "info", backend="app", server="web2"),
        task("haproxy_member", "again", backend="app", server="web2", state="drained", wait=False),
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert res["drained"]["changed"] is True
    assert [(m["name"], m["state"]) for m in res["info"]["members"]] == [("web2", "drained")]
    assert res["again"]["changed"] is False
    assert admin(hap, "web2") == "DRAIN"


def test_haproxy_group_sets_the_connection_once(hap, tmp_path):
    """group/gentle.lb.haproxy, here with the stats page (no socket at all)."""
    proc, res = play(tmp_path, {"group/gentle.lb.haproxy": {
        "stats_url": hap.stats_url, "stats_user": hap.stats_user, "stats_password": hap.stats_password}}, [
        task("haproxy_member", "absent", backend="app", server="web3", state="absent", wait=False),
        task("haproxy_member_info", "info", backend="app"),
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert res["absent"]["changed"] is True
    states = dict((m["name"], m["state"]) for m in res["info"]["members"])
    assert states["web3"] == "absent" and states["web1"] == "present"
    assert admin(hap, "web3") == "MAINT"


def test_per_balancer_groups_configure_haproxy_and_f5_in_one_play(hap, f5, tmp_path):
    defaults = {
        "group/gentle.lb.haproxy": {"socket": hap.tcp_socket},
        "group/gentle.lb.f5": {"server": "127.0.0.1", "server_port": f5.port, "user": "admin",
                               "password": "admin", "validate_certs": False},
    }
    proc, res = play(tmp_path, defaults, [
        task("haproxy_member", "hap_drained", backend="app", server="web1", state="drained", wait=False),
        task("f5_pool_member", "f5_drained", pool="web", address="10.0.0.2", port=80, state="drained"),
        task("haproxy_member_info", "hap_info", backend="app", server="web1"),
        task("f5_pool_member_info", "f5_info", pool="web"),
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert res["hap_drained"]["changed"] is True and res["f5_drained"]["changed"] is True
    assert res["hap_info"]["members"][0]["state"] == "drained"
    f5_states = dict((m["name"], m["state"]) for m in res["f5_info"]["members"])
    assert f5_states == {"10.0.0.1:80": "present", "10.0.0.2:80": "drained", "10.0.0.3:80": "present"}
    assert admin(hap, "web1") == "DRAIN"
    assert f5_session(f5, "10.0.0.2:80") == "user-disabled"
    assert f5_session(f5, "10.0.0.1:80") == "user-enabled"


def test_lb_group_with_both_balancers_options_is_refused(hap, tmp_path):
    """Why the per-balancer groups exist: group/gentle.lb.lb hands every module
    every option, and haproxy_member has no 'server' (F5's) option."""
    proc, _res = play(tmp_path, {"group/gentle.lb.lb": {
        "socket": hap.admin_socket, "server": "127.0.0.1", "server_port": 443, "user": "admin",
        "password": "admin", "validate_certs": False}}, [
        task("haproxy_member", "drained", backend="app", server="web2", state="drained", wait=False),
    ])
    assert proc.returncode != 0
    assert "Unsupported parameters for (gentle.lb.haproxy_member) module: password, server_port, user" \
        in proc.stdout, proc.stdout
    assert admin(hap, "web2") == "READY"


# --------------------------------------------------------------------------
# Credentials injected as environment variables (AWX credential types)


@pytest.mark.parametrize("transport", ["stats", "tcp"])
def test_haproxy_credential_env_needs_no_connection_arguments(hap, tmp_path, transport):
    if transport == "stats":
        env = render_injectors("credential_type_haproxy_stats.yml", dict(
            stats_url=hap.stats_url, stats_user=hap.stats_user, stats_password=hap.stats_password,
            validate_certs=True))
    else:
        env = render_injectors("credential_type_haproxy_socket.yml", dict(socket=hap.tcp_socket))
    # The other type's variables are not set (render_injectors sets them to '',
    # which the modules treat as unset).
    assert env["HAPROXY_SOCKET" if transport == "stats" else "HAPROXY_STATS_URL"] == ""
    proc, res = play(tmp_path, {}, [
        task("haproxy_member", "drained", backend="app", server="web3", state="drained", wait=False),
        task("haproxy_member_info", "info", backend="app", server="web3"),
        task("haproxy_member", "present", backend="app", server="web3", state="present"),
    ], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert res["drained"]["changed"] is True and res["present"]["changed"] is True
    assert res["info"]["members"][0]["state"] == "drained"
    assert admin(hap, "web3") == "READY"


@pytest.mark.parametrize("verify", [False, True])
def test_f5_credential_env_needs_no_connection_arguments(f5, tmp_path, verify):
    inputs = dict(server="127.0.0.1", server_port=str(f5.port), user="admin", password="admin",
                  validate_certs=verify)
    env = render_injectors("credential_type_f5.yml", inputs)
    assert env["F5_VALIDATE_CERTS"] == str(verify)        # AWX renders a boolean as True / False
    if verify:
        # Verified TLS: the device's CA in the execution environment (docs/execution-environment.md).
        env["REQUESTS_CA_BUNDLE"] = f5.ca_cert
    proc, res = play(tmp_path, {}, [
        task("f5_pool_member", "drained", pool="web", name="10.0.0.3:80", state="drained"),
        task("f5_pool_member_info", "info", pool="web", name="10.0.0.3:80"),
    ], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert res["drained"]["changed"] is True
    assert [(m["name"], m["state"]) for m in res["info"]["members"]] == [("10.0.0.3:80", "drained")]
    assert f5_session(f5, "10.0.0.3:80") == "user-disabled"


def test_f5_credential_without_validate_certs_is_false_and_port_blank_is_443():
    """What AWX injects for a credential created without the optional fields:
    F5_VALIDATE_CERTS=False (a boolean field left out is False, whatever the
    type's default) and F5_SERVER_PORT='' (the module's default port)."""
    env = render_injectors("credential_type_f5.yml", dict(server="127.0.0.1", user="admin", password="admin"))
    assert env["F5_VALIDATE_CERTS"] == "False" and env["F5_SERVER_PORT"] == ""
    result = run_module("f5_pool_member_info", {"pool": "web"}, env=env)
    # Port 443 on 127.0.0.1: nothing listens there, and the message says which port was tried.
    assert result.failed and result["msg"].startswith("F5 127.0.0.1:443: cannot connect"), result
