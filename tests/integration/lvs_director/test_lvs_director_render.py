# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gentle.lb.lvs_director on the host: render, validate with Debian's real
keepalived (`keepalived -t`), idempotence, reload only on change, refusals.

Nothing here touches the kernel: the configuration goes to a temporary path,
the reload is a command that leaves a marker file, the IPVS check is off.
The runtime behaviour (real IPVS, real keepalived) is in test_lvs_director_uml.py.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
ROLE = os.path.join(REPO, "roles", "lvs_director")
sys.path.insert(0, os.path.dirname(HERE))

from helpers import run_playbook  # noqa: E402

KEEPALIVED = shutil.which("keepalived", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")

pytestmark = pytest.mark.skipif(KEEPALIVED is None, reason="keepalived not installed (Debian package keepalived)")

# Two carriers x HTTP/HTTPS, from one list of real servers (docs/lvs_director.md).
CARRIERS = ["203.0.113.10", "198.51.100.10"]
REAL_SERVERS = [
    {"name": "web1", "ip": "10.1.0.11", "weight": 3},
    {"name": "web2", "ip": "10.1.0.12"},
    {"name": "web3", "ip": "10.1.0.13", "services": ["www"]},
]
VIRTUAL_SERVERS = [
    {"name": "www", "vips": CARRIERS, "port": 80, "scheduler": "wrr", "quorum": 2,
     "sorry_server": {"ip": "127.0.0.1", "port": 8099},
     "check": {"type": "HTTP_GET", "path": "/health", "virtualhost": "www.example.com",
               "status_code": 200, "connect_timeout": 2, "retry": 1, "delay_before_retry": 1}},
    {"name": "www-tls", "vips": CARRIERS, "port": 443, "persistence_timeout": 300,
     "check": {"type": "SSL_GET", "path": "/health", "virtualhost": "www.example.com", "enable_sni": True,
               "digest": hashlib.md5(b"OK\n").hexdigest()}},  # nosec - keepalived's digest is MD5
    {"name": "db", "fwmark": 7, "forwarding": "DR", "maintenance_check": False,
     "real_servers": ["web1", {"name": "web2", "weight": 5}],
     "check": {"type": "TCP_CHECK", "connect_port": 5432}},
    {"name": "api6", "vip": "2001:db8::100", "port": 8080, "inhibit_on_failure": False,
     "real_servers": [{"name": "v6a", "ip": "2001:db8::1"}],
     "check": {"type": "MISC_CHECK", "misc_path": "/usr/local/bin/check-api --fast", "misc_dynamic": True}},
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("lvs_director")


def base_vars(workdir, **extra):
    out = dict(
        lvs_director_install=False,
        lvs_director_verify=False,
        lvs_director_config_path=str(workdir / "keepalived.conf"),
        lvs_director_notify_script=str(workdir / "keepalived-lvs-notify"),
        lvs_director_maintenance_dir=str(workdir / "maint"),
        lvs_director_notify_log=str(workdir / "notify.log"),
        lvs_director_reload_method="command",
        lvs_director_reload_command=["touch", str(workdir / "reloaded")],
        lvs_director_router_id="lvs1",
        lvs_director_real_servers=REAL_SERVERS,
        lvs_director_virtual_servers=VIRTUAL_SERVERS,
    )
    out.update(extra)
    return out


def director_playbook(workdir):
    path = workdir / "director.yml"
    path.write_text(
        "- name: Configure the director\n"
        "  hosts: localhost\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: gentle.lb.lvs_director\n")
    return str(path)


def play(workdir, extra_vars):
    proc = run_playbook(director_playbook(workdir), extra_vars, args=("-c", "local"))
    recap = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout)
    assert recap, proc.stdout + proc.stderr
    return proc, int(recap.group(2)), int(recap.group(3))


def blocks(config, keyword):
    """The text of every top-level `keyword ... { ... }` block of a keepalived config."""
    out, depth, current = [], 0, None
    for line in config.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if depth == 0 and stripped.startswith(keyword + " "):
            current = []
        if current is not None:
            current.append(line)
        depth += stripped.count("{") - stripped.count("}")
        if current is not None and depth == 0 and stripped:
            out.append("\n".join(current))
            current = None
    return out


@pytest.fixture(scope="module")
def rendered(workdir):
    """Two runs of the role with the same data, the second must change nothing."""
    first, changed1, failed1 = play(workdir, base_vars(workdir))
    assert failed1 == 0, first.stdout
    reloaded_first = (workdir / "reloaded").exists()
    (workdir / "reloaded").unlink(missing_ok=True)
    second, changed2, failed2 = play(workdir, base_vars(workdir))
    assert failed2 == 0, second.stdout
    return {
        "config": (workdir / "keepalived.conf").read_text(),
        "changed": [changed1, changed2],
        "reloaded": [reloaded_first, (workdir / "reloaded").exists()],
        "first": first.stdout,
        "second": second.stdout,
    }


def test_second_run_changes_nothing_and_reloads_nothing(rendered):
    assert rendered["changed"][0] >= 3, rendered["first"]  # notify script, maintenance dir, config (+ reload)
    assert rendered["changed"][1] == 0, rendered["second"]
    assert rendered["reloaded"] == [True, False]


def test_check_mode_shows_the_change_and_writes_nothing(workdir, rendered):
    live = workdir / "keepalived.conf"
    before = live.read_bytes()
    (workdir / "reloaded").unlink(missing_ok=True)
    servers = [dict(REAL_SERVERS[0], weight=7)] + REAL_SERVERS[1:]
    proc = run_playbook(director_playbook(workdir), base_vars(workdir, lvs_director_real_servers=servers),
                        args=("-c", "local", "--check", "--diff"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^-\s+weight 3$", proc.stdout, re.M) and re.search(r"^\+\s+weight 7$", proc.stdout, re.M)
    assert live.read_bytes() == before
    assert not (workdir / "reloaded").exists()


def test_rendered_config_passes_keepalived_t(workdir, rendered):
    proc = subprocess.run([KEEPALIVED, "-t", "-f", str(workdir / "keepalived.conf")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # keepalived -t exits 5 on any warning; none here


def test_two_carriers_times_http_and_https_from_one_list(rendered):
    servers = blocks(rendered["config"], "virtual_server")
    heads = [b.splitlines()[0] for b in servers]
    assert heads == [
        "virtual_server 203.0.113.10 80 {", "virtual_server 198.51.100.10 80 {",
        "virtual_server 203.0.113.10 443 {", "virtual_server 198.51.100.10 443 {",
        "virtual_server fwmark 7 {", "virtual_server 2001:db8::100 8080 {",
    ]
    www, tls = servers[0], servers[2]
    # web3 is only in www; every real server of a service carries its check.
    assert re.findall(r"real_server (\S+) (\d+)", www) == [("10.1.0.11", "80"), ("10.1.0.12", "80"), ("10.1.0.13", "80")]
    assert re.findall(r"real_server (\S+) (\d+)", tls) == [("10.1.0.11", "443"), ("10.1.0.12", "443")]
    assert www.count("HTTP_GET {") == 3 and tls.count("SSL_GET {") == 2
    for text in (www, tls):
        assert "virtualhost www.example.com" in text
        assert "path /health" in text
        assert "inhibit_on_failure" in text  # the default
    assert "lvs_sched wrr" in www and "quorum 2" in www and "sorry_server 127.0.0.1 8099" in www
    assert "weight 3" in www
    assert "connect_timeout 2" in www and "retry 1" in www and "delay_before_retry 1" in www
    assert "persistence_timeout 300" in tls and "enable_sni" in tls
    assert "digest " + hashlib.md5(b"OK\n").hexdigest() in tls  # nosec


def test_other_check_types_and_options(rendered):
    servers = blocks(rendered["config"], "virtual_server")
    fwmark, v6 = servers[4], servers[5]
    assert "lvs_method DR" in fwmark and "protocol" not in fwmark
    assert re.findall(r"real_server (\S+) \{", fwmark) == ["10.1.0.11", "10.1.0.12"]
    assert "weight 5" in fwmark  # the service's override of web2
    assert "TCP_CHECK {" in fwmark and "connect_port 5432" in fwmark
    assert "MISC_CHECK" not in fwmark  # maintenance_check: false
    assert "inhibit_on_failure" not in v6
    assert 'misc_path "/usr/local/bin/check-api --fast"' in v6 and "misc_dynamic" in v6


def test_maintenance_check_and_notify_lines(workdir, rendered):
    www = blocks(rendered["config"], "virtual_server")[0]
    maint = str(workdir / "maint")
    assert ('misc_path "/usr/bin/test ! -e {0}/web1 -a ! -e {0}/10.1.0.11 -a ! -e {0}/10.1.0.11:80"'
            .format(maint)) in www
    notify = str(workdir / "keepalived-lvs-notify")
    assert 'notify_up "%s UP www tcp:203.0.113.10:80 10.1.0.11:80 web1"' % notify in www
    assert 'notify_down "%s DOWN www tcp:203.0.113.10:80 10.1.0.11:80 web1"' % notify in www
    assert 'quorum_down "%s QUORUM_DOWN www tcp:203.0.113.10:80 - -"' % notify in www
    v6 = blocks(rendered["config"], "virtual_server")[5]
    assert "tcp:[2001:db8::100]:8080 [2001:db8::1]:8080 v6a" in v6


def test_maintenance_check_command_fails_while_a_file_names_the_server(workdir, rendered):
    www = blocks(rendered["config"], "virtual_server")[0]
    command = re.search(r'misc_path "(/usr/bin/test [^"]*web2[^"]*)"', www).group(1)
    argv = shlex.split(command)
    maint = workdir / "maint"
    assert subprocess.run(argv, check=False).returncode == 0
    for name in ("web2", "10.1.0.12", "10.1.0.12:80"):
        (maint / name).touch()
        assert subprocess.run(argv, check=False).returncode == 1, name
        (maint / name).unlink()
    (maint / "10.1.0.12:443").touch()  # another port of the same server: not this service
    assert subprocess.run(argv, check=False).returncode == 0
    (maint / "10.1.0.12:443").unlink()


def test_notify_script_logs_one_timestamped_line_and_calls_the_hook(workdir, rendered, tmp_path):
    hook_log = tmp_path / "hook.log"
    hook = tmp_path / "hook"
    hook.write_text("#!/bin/sh\necho \"$*\" >>%s\nexit 3\n" % hook_log)
    hook.chmod(0o755)
    vars_ = base_vars(workdir, lvs_director_notify_hook=str(hook), lvs_director_notify_syslog=False,
                      lvs_director_notify_script=str(tmp_path / "notify"),
                      lvs_director_notify_log=str(tmp_path / "notify.log"),
                      lvs_director_config_path=str(tmp_path / "keepalived.conf"))
    proc, unused, failed = play(workdir, vars_)
    assert failed == 0, proc.stdout
    script = str(tmp_path / "notify")
    subprocess.run([script, "DOWN", "www", "tcp:203.0.113.10:80", "10.1.0.11:80", "web1"], check=True)
    subprocess.run([script, "QUORUM_DOWN", "www", "tcp:203.0.113.10:80", "-", "-"], check=True)
    lines = (tmp_path / "notify.log").read_text().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
    assert re.fullmatch(stamp + r" DOWN www tcp:203\.0\.113\.10:80 10\.1\.0\.11:80 web1", lines[0]), lines
    assert re.fullmatch(stamp + r" HOOK_FAILED \S+/hook rc=3", lines[1]), lines
    assert re.fullmatch(stamp + r" QUORUM_DOWN www tcp:203\.0\.113\.10:80 - -", lines[2]), lines
    assert hook_log.read_text().splitlines() == [
        "DOWN www tcp:203.0.113.10:80 10.1.0.11:80 web1", "QUORUM_DOWN www tcp:203.0.113.10:80 - -"]


def test_keepalived_t_failure_leaves_the_live_config_and_the_daemon_alone(workdir, rendered):
    live = workdir / "keepalived.conf"
    before = live.read_bytes()
    (workdir / "reloaded").unlink(missing_ok=True)
    # A quorum above the total weight of the pool: the data model accepts it,
    # keepalived -t does not (it would silently lower the quorum).
    services = [dict(VIRTUAL_SERVERS[0], quorum=50)] + VIRTUAL_SERVERS[1:]
    proc, unused, failed = play(workdir, base_vars(workdir, lvs_director_virtual_servers=services))
    assert failed == 1
    assert "failed to validate" in proc.stdout
    assert "quorum 50 for [203.0.113.10]:tcp:80 exceeds total weight of real servers 5" in proc.stdout
    assert live.read_bytes() == before
    assert not (workdir / "reloaded").exists()


# Each case: what is wrong, and the words the failure must say.
BAD_INPUTS = [
    ("empty", {"lvs_director_virtual_servers": []}, "lvs_director_virtual_servers is empty"),
    ("vip and fwmark", {"lvs_director_virtual_servers": [
        {"name": "x", "vip": "10.0.0.1", "fwmark": 3, "port": 80}]}, "set exactly one of vip, vips and fwmark"),
    ("no port", {"lvs_director_virtual_servers": [{"name": "x", "vip": "10.0.0.1"}]},
     "a VIP service needs a port"),
    ("unknown real server", {"lvs_director_virtual_servers": [
        {"name": "x", "vip": "10.0.0.1", "port": 80, "real_servers": ["web9"]}]},
     "real_servers names unknown real servers web9"),
    ("host name", {"lvs_director_real_servers": [{"name": "web1", "ip": "web1.example.com"}]},
     "these are not IPv4 or IPv6 addresses (keepalived needs addresses, not host names): web1.example.com"),
    ("bad name", {"lvs_director_real_servers": [{"name": "web 1", "ip": "10.1.0.11"}]},
     "invalid: web 1"),
    ("duplicate name", {"lvs_director_real_servers": [{"name": "web1", "ip": "10.1.0.11"},
                                                      {"name": "web1", "ip": "10.1.0.12"}]},
     "duplicates in"),
    ("misc without path", {"lvs_director_virtual_servers": [
        {"name": "x", "vip": "10.0.0.1", "port": 80, "check": {"type": "MISC_CHECK"}}]},
     "a MISC_CHECK needs check.misc_path"),
    ("typo in a check key", {"lvs_director_virtual_servers": [
        {"name": "x", "vip": "10.0.0.1", "port": 80, "check": {"type": "HTTP_GET", "pth": "/"}}]},
     "pth"),
    ("bad scheduler", {"lvs_director_virtual_servers": [
        {"name": "x", "vip": "10.0.0.1", "port": 80, "scheduler": "fastest"}]}, "fastest"),
    ("command without command", {"lvs_director_reload_method": "command", "lvs_director_reload_command": []},
     "lvs_director_reload_command is empty"),
    # The version check says what it ran and what came back, never "keepalived 0".
    ("keepalived prints no version", {"lvs_director_keepalived_binary": "FAKE:echo 'Segmentation fault' >&2; exit 139"},
     "keepalived FAKE: `FAKE --version` printed no version (exit status 139: Segmentation fault)"),
    ("keepalived missing", {"lvs_director_keepalived_binary": "/nonexistent/keepalived"},
     "keepalived /nonexistent/keepalived: `/nonexistent/keepalived --version` printed no version (exit status 2: "),
    ("keepalived 1.x", {"lvs_director_keepalived_binary": "FAKE:echo 'Keepalived v1.3.5 (03/19,2017)' >&2"},
     "keepalived 1.3.5 is too old: gentle.lb.lvs_director writes lvs_sched"),
]


def fake_keepalived(tmp_path, label, case):
    """Turn a "FAKE:<shell>" keepalived binary into a script; the words expected then name its path."""
    binary = case.get("lvs_director_keepalived_binary", "keepalived")
    if not binary.startswith("FAKE:"):
        return case, None
    script = tmp_path / ("keepalived-" + re.sub(r"\W+", "-", label))
    script.write_text("#!/bin/sh\n%s\n" % binary[len("FAKE:"):])
    script.chmod(0o755)
    return dict(case, lvs_director_keepalived_binary=str(script)), str(script)


def test_bad_inputs_are_refused_before_anything_is_written(workdir, rendered, tmp_path):
    """All cases in one ansible-playbook run: each includes the role in a block and keeps its message."""
    cases, expected = [], []
    for label, case, words in BAD_INPUTS:
        case, script = fake_keepalived(tmp_path, label, case)
        cases.append(dict(base_vars(tmp_path / "never", lvs_director_keepalived_binary="keepalived"), **case))
        expected.append((label, words.replace("FAKE", script) if script else words))
    playbook = tmp_path / "bad.yml"
    playbook.write_text("""
- name: Every bad input fails the role
  hosts: localhost
  gather_facts: false
  vars:
    messages: []
  tasks:
    - name: Try each case
      ansible.builtin.include_tasks: case.yml
      loop: "{{ cases }}"
      loop_control:
        loop_var: case
    - name: Report
      ansible.builtin.debug:
        msg: "MESSAGES={{ messages | to_json }}"
""")
    (tmp_path / "case.yml").write_text("""
- name: One case
  block:
    - name: Run the role
      ansible.builtin.include_role:
        name: gentle.lb.lvs_director
      vars:
        lvs_director_install: "{{ case.lvs_director_install }}"
        lvs_director_keepalived_binary: "{{ case.lvs_director_keepalived_binary }}"
        lvs_director_verify: "{{ case.lvs_director_verify }}"
        lvs_director_config_path: "{{ case.lvs_director_config_path }}"
        lvs_director_notify_script: "{{ case.lvs_director_notify_script }}"
        lvs_director_maintenance_dir: "{{ case.lvs_director_maintenance_dir }}"
        lvs_director_notify_log: "{{ case.lvs_director_notify_log }}"
        lvs_director_reload_method: "{{ case.lvs_director_reload_method }}"
        lvs_director_reload_command: "{{ case.lvs_director_reload_command }}"
        lvs_director_real_servers: "{{ case.lvs_director_real_servers }}"
        lvs_director_virtual_servers: "{{ case.lvs_director_virtual_servers }}"
    - name: It must not get here
      ansible.builtin.set_fact:
        messages: "{{ messages + ['NOT REFUSED'] }}"
  rescue:
    - name: Keep the message
      ansible.builtin.set_fact:
        messages: "{{ messages + [_msg | string] }}"
      vars:
        # A loop's failure says "One or more items failed": take the item's.
        _msg: >-
          {{ ansible_failed_result.results | default([]) | selectattr('failed', 'defined') | selectattr('failed')
             | map(attribute='msg') | first | default(ansible_failed_result.msg | default('')) }}
""")
    proc = run_playbook(str(playbook), {"cases": cases}, args=("-c", "local"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    messages = json.loads(re.search(r"MESSAGES=(\[.*\])", proc.stdout).group(1).replace('\\"', '"'))
    assert len(messages) == len(BAD_INPUTS)
    for (label, words), message in zip(expected, messages):
        assert words in message, "%s: %s" % (label, message)
        assert "keepalived 0" not in message, "%s: %s" % (label, message)
    assert not (tmp_path / "never").exists()


def test_argument_specs_and_defaults_agree():
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    documented = {}
    for entry in specs.values():
        for name, option in entry["options"].items():
            if "default" in option:
                documented.setdefault(name, option["default"])
    assert set(documented) == set(defaults)
    for name, value in defaults.items():
        assert documented[name] == value, name
    assert set(specs) == {"main", "drain", "restore"}
    assert all(name.startswith("lvs_director_") for name in defaults)
