# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Persistent services with a real persistent client.

The lab's client namespace (one address, 192.168.1.2) opens new connections
to a persistent NAT service (``-p 300``): IPVS sends them all to the real
server its persistence template names.  Draining that server to weight 0
does not move them while net.ipv4.vs.expire_quiescent_template is 0 (the
kernel's default): the module says so in one warning.  With
``expire_quiescent_template: true`` the module sets the sysctl to 1 before the
drain, and the same client's next connection goes to another server.
"""

import pytest

from test_ipvs_guest_live import rs

SYSCTL = "/proc/sys/net/ipv4/vs/expire_quiescent_template"
PORT = 89


def sysctl():
    with open(SYSCTL) as handle:
        return handle.read().strip()


@pytest.fixture
def kernel_default():
    """The sysctl at the kernel's default, before and after (it is director-wide)."""
    with open(SYSCTL, "w") as handle:
        handle.write("0\n")
    yield
    with open(SYSCTL, "w") as handle:
        handle.write("0\n")


def test_a_persistent_client_follows_the_sysctl(lab, director, kernel_default):
    service = "tcp:10.0.0.100:%d" % PORT
    director.restore("-A -t 10.0.0.100:%d -s rr -p 300\n" % PORT + "".join(
        "-a -t 10.0.0.100:%d -r 172.16.%d.2:%d -m -w 1\n" % (PORT, index, PORT) for index in (1, 2, 3)))
    pinned = lab.ask(PORT, count=4)
    assert len(set(pinned)) == 1, pinned                   # one template: every connection to one server
    server = pinned[0]
    address = "172.16.%s.2" % server[2:]

    # The kernel's default: weight 0, and the persistent client still comes back.
    drained = director.member(address=address, state="drained", virtual_service=service)
    assert not drained.failed and drained["changed"] is True
    assert director.dests()[rs(int(server[2:]), PORT)]["weight"] == 0
    assert ("virtual service %s is persistent and net.ipv4.vs.expire_quiescent_template=0: clients with a "
            "persistence template keep reaching %s:%d while its weight is 0; set expire_quiescent_template: true "
            "(or the sysctl to 1) to move them, or count_persistent: true to wait until their templates expire"
            % (service, address, PORT)) in director.warnings(drained)
    assert sysctl() == "0"
    assert lab.ask(PORT, count=3) == [server] * 3           # drained, yet still chosen for this client

    # Back in rotation; the template still names it.
    assert director.member(address=address, state="present", virtual_service=service)["changed"] is True
    assert lab.ask(PORT) == server

    # With the option: the sysctl is set before the weight goes to 0, and the
    # same client's next connections go elsewhere (to one new server).
    moved = director.member(address=address, state="drained", virtual_service=service,
                            expire_quiescent_template=True)
    assert not moved.failed and moved["changed"] is True
    assert sysctl() == "1"
    assert ("net.ipv4.vs.expire_quiescent_template: set to 1 (was 0) before draining in the persistent virtual "
            "service %s, so clients with a persistence template go to other real servers; it applies to the "
            "whole director and stays 1" % service) in director.warnings(moved)
    assert not any("keep reaching" in w for w in director.warnings(moved))
    answers = lab.ask(PORT, count=3)
    assert server not in answers and len(set(answers)) == 1, answers
