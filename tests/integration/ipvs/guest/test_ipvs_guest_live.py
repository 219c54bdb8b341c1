# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drain waiting proven with real connections through the VIP: the client
namespace holds TCP connections to 10.0.0.100:80, IPVS (NAT) forwards them to
rs1 (172.16.1.2), and the module must not return while they are open, and
must return promptly once they close.

Each test builds the service with rs1 alone in rotation, holds the
connections (so they all land on rs1), then puts rs2/rs3 in rotation: new
connections then have somewhere to go, and the capacity guard is satisfied.

Each test uses its own port (the lab's servers listen on 80-85): IPVS keeps
connection entries after a service is deleted (ipvsadm -C), and re-adding the
same real server revives them, so a test must never inherit another's."""

import time

# The module polls every 0.2 s (Director.member); once the connections are
# gone it returns within that, one more look at the table and its own exit:
# 2 s here, plus whatever the guest was stalled meanwhile (measured).
PROMPT = 2.0


def rs(index, port):
    return ("-t 10.0.0.100:%d" % port, "172.16.%d.2:%d" % (index, port))


def pin_connections_on_rs1(lab, director, count, port):
    lab.service([1, 0, 0], port=port)
    held = lab.hold(count, port=port)
    assert director.dests()[rs(1, port)]["active"] == count
    for index in (2, 3):
        director.ipvsadm("-e", "-t", "10.0.0.100:%d" % port, "-r", "172.16.%d.2:%d" % (index, port), "-m", "-w", "1")
    return held


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached within %gs" % timeout
        time.sleep(0.05)


def assert_prompt(returned_after, stalled):
    assert returned_after < PROMPT + stalled, "returned %.2f s after the connections closed, over %.1f s + %.2f s " \
        "(the guest's stall meanwhile) by %.2f s" % (returned_after, PROMPT, stalled,
                                                     returned_after - PROMPT - stalled)


def test_drain_waits_for_live_connections_and_returns_promptly(lab, director, stall):
    port = 81
    rs1 = rs(1, port)
    held = pin_connections_on_rs1(lab, director, 3, port)
    call = lab.in_background(director.member, address="172.16.1.2", state="drained", wait_timeout=120)
    wait_for(lambda: director.dests()[rs1]["weight"] == 0)

    # Quiescent: new connections go elsewhere, the held ones stay on rs1.
    answers = [lab.ask(port) for attempt in range(4)]
    assert set(answers) <= {"rs2", "rs3"}, answers
    time.sleep(2.0)
    assert not call.done.is_set(), "the drain returned while 3 connections were open"
    assert director.dests()[rs1]["active"] == 3

    held.release()
    assert call.done.wait(30)
    result = call.result
    returned_after = call.finished_at - held.released_at
    assert not result.failed, result
    assert result["changed"] is True
    assert result["members"][0]["sessions"] == 0 and result["members"][0]["state"] == "drained"
    assert result["waited"] >= 2.0
    assert_prompt(returned_after, stall(held.released_at, call.finished_at))
    print("drain returned %.2fs after release, waited %.2fs" % (returned_after, result["waited"]))


def test_absent_drains_waits_then_deletes(lab, director, stall):
    port = 82
    rs1 = rs(1, port)
    held = pin_connections_on_rs1(lab, director, 2, port)
    call = lab.in_background(director.member, address="172.16.1.2", state="absent",
                             virtual_service="tcp:10.0.0.100:%d" % port, wait_timeout=120)
    wait_for(lambda: director.dests()[rs1]["weight"] == 0)
    time.sleep(1.5)
    assert not call.done.is_set()
    assert rs1 in director.dests(), "deleted while connections were open"
    held.release()
    assert call.done.wait(30)
    assert_prompt(call.finished_at - held.released_at, stall(held.released_at, call.finished_at))
    assert call.result["changed"] is True and call.result["members"][0]["state"] == "absent"
    assert rs1 not in director.dests()
    assert lab.ask(port) in ("rs2", "rs3")


def test_timeout_fail_continue_and_force(lab, director):
    port = 83
    rs1 = rs(1, port)
    held = pin_connections_on_rs1(lab, director, 2, port)

    started = time.monotonic()
    failed = director.member(address="172.16.1.2", state="drained", wait_timeout=1.5)
    assert failed.failed
    assert failed["msg"] == ("real server 172.16.1.2:83: not drained after wait_timeout=1.5s "
                             "(tcp:10.0.0.100:83/172.16.1.2:83 2 sessions); giving up, raise wait_timeout or "
                             "use on_timeout: force")
    assert failed["changed"] is True and failed["members"][0]["state"] == "drained"
    assert time.monotonic() - started >= 1.5
    assert director.dests()[rs1]["weight"] == 0                 # left drained

    went_on = director.member(address="172.16.1.2", state="drained", wait_timeout=1, on_timeout="continue")
    assert not went_on.failed and went_on["changed"] is False
    assert any("continuing" in w for w in director.warnings(went_on))

    forced = director.member(address="172.16.1.2", state="absent", wait_timeout=1, on_timeout="force")
    assert not forced.failed, forced
    assert forced["changed"] is True and rs1 not in director.dests()
    assert any("2 connection(s) still open" in w and "expire_nodest_conn=0" in w
               for w in director.warnings(forced))
    held.release()


def test_inactive_connections_are_counted_on_request(lab, director):
    port = 84
    rs1 = rs(1, port)
    held = pin_connections_on_rs1(lab, director, 1, port)
    held.release()
    wait_for(lambda: director.dests()[rs1]["active"] == 0)
    assert director.dests()[rs1]["inactive"] >= 1              # FIN_WAIT / TIME_WAIT
    strict = director.member(address="172.16.1.2", state="drained", count_inactive=True, wait_timeout=1)
    assert strict.failed and "not drained after wait_timeout=1s" in strict["msg"]
    assert strict["members"][0]["inactive_connections"] >= 1
    plain = director.member(address="172.16.1.2", state="drained")
    assert not plain.failed and plain["members"][0]["sessions"] == 0


def test_udp_service_drains_and_restores(lab, director):
    service = lab.service([2, 1, 1], port=85, udp=True)
    drained = director.member(address="172.16.1.2", state="drained", virtual_service=service)
    assert drained["changed"] is True
    assert director.dests()[("-u 10.0.0.100:85", "172.16.1.2:85")]["weight"] == 0
    restored = director.member(address="172.16.1.2", state="present", virtual_service=service)
    assert restored["members"][0]["weight"] == 2
    assert director.dests()[("-u 10.0.0.100:85", "172.16.1.2:85")]["fwd"] == "-m"
