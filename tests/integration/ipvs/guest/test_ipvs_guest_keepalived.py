# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ipvs_member sees and does on a keepalived VRRP pair: the product facts
the lvs_director and rolling_deploy roles build on.

Two directors in one guest: director A is the root network namespace (the
lab's director: clients reach VIP 10.0.0.110 through it), director B the
namespace ``dir2``; a veth between them carries VRRP (A has the higher
priority: MASTER, B BACKUP).  Debian's keepalived runs on both with the same
virtual_server for VIP:90 and rs1..rs3 (weights 3, 2, 1, inhibit_on_failure),
each real server checked by a MISC_CHECK that fails while a maintenance file
for it exists on that director, or while its health file (the application's
health, shared) is missing.

Observed facts (keepalived 2.2.7, Linux 6.1 IPVS):

* Both directors carry the full IPVS table, MASTER and BACKUP alike: a drain
  has to be sent to each of them (each has its own table and its own lock).
* A reload (SIGHUP) with an unchanged configuration leaves the weights as they
  are, also a weight 0 written with ipvsadm.
* A health-check recovery makes keepalived write the configured weight again
  ("Enabling service"): during an ipvs_member wait the core sees the drain
  undone and puts it back (reasserted, with a warning); after the wait nothing
  does, so the server is back in rotation on that director.
* A drain through keepalived (the maintenance file) holds through reloads and
  health-check recoveries; ipvs_member then changes nothing (changed: false)
  and only waits for the connections, with nothing to re-assert.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import run_module  # tests/integration, put on sys.path by conftest.py

from test_ipvs_guest_live import wait_for

KA = "/run/ka"
VIP = "10.0.0.110"
PORT = 90
SERVICE = "tcp:%s:%d" % (VIP, PORT)
WEIGHTS = {"rs1": 3, "rs2": 2, "rs3": 1}
DIRECTORS = {"A": None, "B": "dir2"}          # name -> network namespace (None: the root one)
# How long the lab waits for keepalived to act (a check every second; far
# longer only when the machine is overloaded): an upper bound, not a promise.
WAIT = 60

CONFIG = """
global_defs {
    router_id director%(name)s
    script_user root
    enable_script_security
}
vrrp_instance VI_1 {
    state BACKUP
    interface %(interface)s
    virtual_router_id 51
    priority %(priority)d
    advert_int 1
    virtual_ipaddress {
        %(vip)s/32 dev dummy0
    }
}
virtual_server %(vip)s %(port)d {
    delay_loop 1
    lvs_sched rr
    lvs_method NAT
    protocol TCP
%(real_servers)s
}
"""
REAL_SERVER = """    real_server 172.16.%(index)d.2 %(port)d {
        weight %(weight)d
        inhibit_on_failure
        MISC_CHECK {
            misc_path "/usr/bin/test ! -e %(maint)s/%(rs)s -a -e %(health)s/%(rs)s"
            misc_timeout 10
        }
    }"""


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


def in_ns(netns, argv):
    return argv if netns is None else ["ip", "netns", "exec", netns] + argv


class Pair(object):
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = {}

    def maint(self, name):
        return os.path.join(KA, "maint-" + name)

    def health(self):
        return os.path.join(KA, "health")

    def up(self):
        os.makedirs(self.health(), exist_ok=True)
        for rs in WEIGHTS:
            open(os.path.join(self.health(), rs), "w").close()
        sh("ip", "netns", "add", "dir2")
        sh("ip", "link", "add", "veth-d2", "type", "veth", "peer", "name", "eth0", "netns", "dir2")
        sh("ip", "addr", "add", "192.168.50.1/24", "dev", "veth-d2")
        sh("ip", "link", "set", "veth-d2", "up")
        for argv in (["ip", "addr", "add", "192.168.50.2/24", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                     ["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "dummy0", "type", "dummy"],
                     ["ip", "link", "set", "dummy0", "up"]):
            sh(*in_ns("dir2", argv))
        for name, netns in DIRECTORS.items():
            os.makedirs(self.maint(name), exist_ok=True)
            real_servers = "\n".join(REAL_SERVER % dict(index=int(rs[2:]), port=PORT, weight=weight, rs=rs,
                                                        maint=self.maint(name), health=self.health())
                                     for rs, weight in WEIGHTS.items())
            conf = os.path.join(KA, "%s.conf" % name)
            with open(conf, "w") as handle:
                handle.write(CONFIG % dict(name=name, interface="veth-d2" if netns is None else "eth0",
                                           priority=150 if name == "A" else 100, vip=VIP, port=PORT,
                                           real_servers=real_servers))
            log = open(os.path.join(self.tmp, "keepalived-%s.log" % name), "w")
            self.procs[name] = subprocess.Popen(in_ns(netns, [
                "keepalived", "-f", conf, "-n", "-l", "-D", "-p", "%s/%s.pid" % (KA, name),
                "-r", "%s/%s-vrrp.pid" % (KA, name), "-c", "%s/%s-check.pid" % (KA, name)]),
                stdout=log, stderr=subprocess.STDOUT)
        # Modules run on director B through this interpreter: its namespace, the same Python.
        with open(os.path.join(KA, "python-in-dir2"), "w") as handle:
            handle.write('#!/bin/sh\nexec ip netns exec dir2 %s "$@"\n' % sys.executable)
        os.chmod(os.path.join(KA, "python-in-dir2"), 0o755)
        wait_for(lambda: all(self.weights(n) == WEIGHTS for n in DIRECTORS), timeout=WAIT)
        wait_for(lambda: self.has_vip(None) and not self.has_vip("dir2"), timeout=WAIT)
        return self

    def down(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        subprocess.run(["ip", "netns", "del", "dir2"], check=False)
        subprocess.run(["rm", "-rf", KA], check=False)

    @staticmethod
    def has_vip(netns):
        out = subprocess.run(in_ns(netns, ["ip", "-o", "addr", "show", "dev", "dummy0"]), capture_output=True,
                             text=True, check=False).stdout
        return (" %s/32 " % VIP) in out

    @staticmethod
    def weights(name):
        """{rsN: weight} of the VIP:90 service on a director, from ipvsadm -Sn."""
        out = subprocess.run(in_ns(DIRECTORS[name], ["ipvsadm", "-Sn"]), capture_output=True, text=True,
                             check=False).stdout
        found = {}
        for line in out.splitlines():
            words = line.split()
            if words[:3] == ["-a", "-t", "%s:%d" % (VIP, PORT)]:
                found["rs" + words[4].split(".")[2]] = int(words[words.index("-w") + 1])
        return found

    def log_count(self, name, text):
        with open(os.path.join(self.tmp, "keepalived-%s.log" % name)) as handle:
            return handle.read().count(text)

    def restart_application(self, rs):
        """The deploy restarts the application: its health check fails, then
        passes again; returns once director A has seen both."""
        disabled = "Disabling service [172.16.%s.2]:tcp:%d" % (rs[2:], PORT)
        enabled = "Enabling service [172.16.%s.2]:tcp:%d" % (rs[2:], PORT)
        before = (self.log_count("A", disabled), self.log_count("A", enabled))
        os.unlink(os.path.join(self.health(), rs))
        wait_for(lambda: self.log_count("A", disabled) > before[0], timeout=WAIT)
        open(os.path.join(self.health(), rs), "w").close()
        wait_for(lambda: self.log_count("A", enabled) > before[1], timeout=WAIT)

    def reload(self, name):
        with open("%s/%s.pid" % (KA, name)) as handle:
            os.kill(int(handle.read()), signal.SIGHUP)

    def module(self, name, module, **args):
        """Run a module on director ``name`` (in its network namespace), with
        that director's own state file."""
        netns = DIRECTORS[name]
        python = sys.executable if netns is None else os.path.join(KA, "python-in-" + netns)
        if module == "ipvs_member":
            args.setdefault("state_file", os.path.join(self.tmp, "weights-%s.json" % name))
            args.setdefault("poll_interval", 0.2)
        return run_module(module, args, python=python)


@pytest.fixture
def pair(lab, tmp_path):
    the_pair = Pair(str(tmp_path))
    try:
        yield the_pair.up()
    finally:
        the_pair.down()


def rs1_active(director):
    return director.dests()[("-t %s:%d" % (VIP, PORT), "172.16.1.2:%d" % PORT)]["active"]


def held_on_rs1(lab, director):
    """Three connections through director A (rr: one on each real server in
    rotation), tried again until rs1 holds one."""
    for _attempt in range(3):
        held = lab.hold(3, port=PORT, vip=VIP)
        if rs1_active(director) >= 1:
            return held
        held.release()
    raise AssertionError("no connection landed on rs1: %s" % director.dests())


def test_both_directors_carry_the_table_and_a_health_recovery_undoes_an_ipvsadm_drain(pair, lab, director):
    # Both directors, MASTER and BACKUP, list the same members: a drain must go to each.
    for name in DIRECTORS:
        info = pair.module(name, "ipvs_member_info", virtual_service=SERVICE)
        assert not info.failed, info
        assert sorted((m["name"], m["weight"], m["state"]) for m in info["members"]) == [
            ("172.16.1.2:90", 3, "present"), ("172.16.2.2:90", 2, "present"), ("172.16.3.2:90", 1, "present")]
        assert any(w.startswith("keepalived is running (pid ") for w in director.warnings(info))

    held = held_on_rs1(lab, director)
    call = lab.in_background(pair.module, "A", "ipvs_member", address="172.16.1.2", state="drained",
                             virtual_service=SERVICE, wait_timeout=90)
    wait_for(lambda: pair.weights("A")["rs1"] == 0, timeout=WAIT)
    assert pair.weights("B")["rs1"] == 3                       # B's table is its own

    # A reload with the same configuration leaves the ipvsadm drain alone.
    pair.reload("A")
    time.sleep(2.5)
    assert pair.weights("A")["rs1"] == 0

    # The application restarts (health check fails, then passes): keepalived
    # writes weight 3 again; the waiting run puts the drain back.
    pair.restart_application("rs1")
    wait_for(lambda: pair.weights("A")["rs1"] == 0, timeout=WAIT)
    held.release()
    assert call.done.wait(60)
    result = call.result
    assert not result.failed, result
    assert result["reasserted"] >= 1
    assert any("found present weight 3 while waiting for drained; set drained again" in w
               for w in director.warnings(result)), director.warnings(result)
    assert result["members"][0]["state"] == "drained" and pair.weights("A")["rs1"] == 0

    # After the wait nobody re-asserts: the next recovery puts rs1 back in rotation on A.
    pair.restart_application("rs1")
    wait_for(lambda: pair.weights("A")["rs1"] == 3, timeout=WAIT)


def test_a_drain_through_keepalived_holds_on_both_directors_through_reloads(pair, lab, director):
    held = held_on_rs1(lab, director)
    for name in DIRECTORS:
        open(os.path.join(pair.maint(name), "rs1"), "w").close()
    wait_for(lambda: all(pair.weights(n)["rs1"] == 0 for n in DIRECTORS), timeout=WAIT)

    calls = dict((name, lab.in_background(pair.module, name, "ipvs_member", address="172.16.1.2", state="drained",
                                          virtual_service=SERVICE, wait_timeout=90)) for name in DIRECTORS)
    time.sleep(3.0)           # both started and waiting (A on the open connection)
    for name in DIRECTORS:
        pair.reload(name)
    os.unlink(os.path.join(pair.health(), "rs1"))
    time.sleep(2.5)
    open(os.path.join(pair.health(), "rs1"), "w").close()
    time.sleep(2.5)
    assert all(pair.weights(n)["rs1"] == 0 for n in DIRECTORS)
    assert not calls["A"].done.is_set(), "director A returned while rs1 had a connection"
    held.release()
    for name, call in calls.items():
        assert call.done.wait(60), name
        result = call.result
        assert not result.failed, (name, result)
        assert result["changed"] is False and result["reasserted"] == 0, (name, result)
        assert result["members"][0]["state"] == "drained" and result["members"][0]["sessions"] == 0

    # Out of maintenance: keepalived puts the configured weight back on both.
    for name in DIRECTORS:
        os.unlink(os.path.join(pair.maint(name), "rs1"))
    wait_for(lambda: all(pair.weights(n) == WEIGHTS for n in DIRECTORS), timeout=WAIT)
    for name in DIRECTORS:
        info = pair.module(name, "ipvs_member_info", virtual_service=SERVICE, address="172.16.1.2")
        assert [(m["state"], m["weight"]) for m in info["members"]] == [("present", 3)]
