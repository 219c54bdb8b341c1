# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every state on every kind of virtual service, against the real kernel IPVS:
check mode (verified with ipvs_member_info), the real run, the rerun
(changed: false), and every option of the destinations kept across
drain/restore."""

from helpers import run_module  # tests/integration, put on sys.path by conftest.py

# A real server 10.0.0.1 in a TCP, a UDP, an SCTP and a firewall-mark service,
# with a different forwarding method and option set in each (NAT on another
# port with thresholds, GUE tunnel with port and checksum, GRE tunnel, route
# with thresholds); 2001:db8::1 in IPv6 TCP, UDP (ipip tunnel) and fwmark
# services.  Every service also has another real server in rotation.
TABLE = """
-A -t 10.0.0.100:80 -s wlc
-a -t 10.0.0.100:80 -r 10.0.0.1:8080 -m -w 5 -x 100 -y 50
-a -t 10.0.0.100:80 -r 10.0.0.2:80 -g -w 1
-A -u 10.0.0.100:53 -s rr
-a -u 10.0.0.100:53 -r 10.0.0.1:53 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum
-a -u 10.0.0.100:53 -r 10.0.0.2:53 -g -w 1
-A --sctp-service 10.0.0.100:3868 -s rr
-a --sctp-service 10.0.0.100:3868 -r 10.0.0.1:3868 -i -w 2 --tun-type gre --tun-nocsum
-a --sctp-service 10.0.0.100:3868 -r 10.0.0.2:3868 -m -w 1
-A -f 7 -s rr
-a -f 7 -r 10.0.0.1:0 -g -w 4 -x 10 -y 5
-a -f 7 -r 10.0.0.2:0 -g -w 1
-A -t [2001:db8::100]:443 -s wrr
-a -t [2001:db8::100]:443 -r [2001:db8::1]:443 -m -w 7 -x 20
-a -t [2001:db8::100]:443 -r [2001:db8::2]:443 -m -w 1
-A -u [2001:db8::100]:53 -s rr
-a -u [2001:db8::100]:53 -r [2001:db8::1]:53 -i -w 6
-a -u [2001:db8::100]:53 -r [2001:db8::2]:53 -m -w 1
-A -f 8 -6 -s rr
-a -f 8 -6 -r [2001:db8::1]:0 -g -w 2
-a -f 8 -6 -r [2001:db8::2]:0 -g -w 1
"""

V4 = {
    ("-t 10.0.0.100:80", "10.0.0.1:8080"): 5,
    ("-u 10.0.0.100:53", "10.0.0.1:53"): 3,
    ("--sctp-service 10.0.0.100:3868", "10.0.0.1:3868"): 2,
    ("-f 7", "10.0.0.1:0"): 4,
}
V4_CONTAINERS = ["fwmark:7", "sctp:10.0.0.100:3868", "tcp:10.0.0.100:80", "udp:10.0.0.100:53"]
V6 = {
    ("-t [2001:db8::100]:443", "[2001:db8::1]:443"): 7,
    ("-u [2001:db8::100]:53", "[2001:db8::1]:53"): 6,
    ("-f 8 -6", "[2001:db8::1]:0"): 2,
}


def without(snapshot, keys, field=None):
    """The snapshot minus the given destinations (or minus one field of them)."""
    result = {}
    for key, value in snapshot.items():
        if key in keys:
            if field is None:
                continue
            value = dict((f, v) for f, v in value.items() if f != field)
        result[key] = value
    return result


def info_entries(address):
    info = run_module("ipvs_member_info", dict(address=address))
    assert not info.failed, info
    return sorted((m["container"], m["name"], m["state"], m["weight"]) for m in info["members"])


def check_then_run(director, expect_members, **args):
    """Check mode first (nothing may change: verified with ipvs_member_info and
    the table), then the real run, then a rerun that must change nothing."""
    before = director.snapshot()
    planned = director.member(args, check=True)
    assert not planned.failed, planned
    assert planned["changed"] is True
    current = sorted((m["container"], m["name"], m["state"], m["weight"]) for m in planned["members"])
    assert info_entries(args["address"]) != current or args["state"] == "absent"
    assert info_entries(args["address"]) == sorted(
        (m["container"], m["name"], m["state_before"], m["weight_before"]) for m in planned["members"]
        if m["state_before"] != "absent")
    assert director.snapshot() == before
    done = director.member(args)
    assert not done.failed, done
    assert done["changed"] is True
    assert sorted(m["container"] for m in done["members"]) == expect_members
    assert [m["state"] for m in planned["members"]] == [m["state"] for m in done["members"]]
    again = director.member(args)
    assert not again.failed, again
    assert again["changed"] is False, again
    return before, done, again


def test_every_state_on_ipv4_in_tcp_udp_sctp_and_fwmark(director):
    director.restore(TABLE)
    start = director.snapshot()

    before, drained, _again = check_then_run(director, V4_CONTAINERS, address="10.0.0.1", state="drained")
    assert all(m["state"] == "drained" and m["weight"] == 0 for m in drained["members"])
    assert dict((m["container"], m["weight_before"]) for m in drained["members"]) == {
        "tcp:10.0.0.100:80": 5, "udp:10.0.0.100:53": 3, "sctp:10.0.0.100:3868": 2, "fwmark:7": 4}
    after = director.snapshot()
    assert all(after[key]["weight"] == 0 for key in V4)
    # Forwarding, tunnel type/port/checksum and thresholds are exactly as before.
    assert without(after, V4, "weight") == without(before, V4, "weight")
    assert drained["diff"]["after"]["tcp:10.0.0.100:80/10.0.0.1:8080"] == {"state": "drained", "weight": 0}
    assert director.memory() == {"tcp:10.0.0.100:80 10.0.0.1:8080": 5, "udp:10.0.0.100:53 10.0.0.1:53": 3,
                                 "sctp:10.0.0.100:3868 10.0.0.1:3868": 2, "fwmark:7 10.0.0.1:0": 4}

    check_then_run(director, V4_CONTAINERS, address="10.0.0.1", state="present")
    assert director.snapshot() == start                 # weights remembered, options kept
    assert director.memory() == {}

    before, removed, again = check_then_run(director, V4_CONTAINERS, address="10.0.0.1", state="absent")
    assert all(m["state"] == "absent" for m in removed["members"])
    assert director.snapshot() == without(start, V4)
    assert "already absent" in again["msg"]


def test_every_state_on_ipv6_in_tcp_udp_and_fwmark6(director):
    director.restore(TABLE)
    start = director.snapshot()
    v6_containers = ["fwmark6:8", "tcp:[2001:db8::100]:443", "udp:[2001:db8::100]:53"]

    before = director.snapshot()
    drained = director.member(address="2001:DB8:0:0::1", state="drained")
    assert drained["changed"] is True
    assert sorted(m["container"] for m in drained["members"]) == v6_containers
    assert all(m["address"] == "2001:db8::1" for m in drained["members"])
    after = director.snapshot()
    assert all(after[key]["weight"] == 0 for key in V6)
    assert without(after, V6, "weight") == without(before, V6, "weight")
    assert director.member(address="2001:db8::1", state="drained")["changed"] is False

    restored = director.member(address="[2001:db8::1]", state="present")
    assert restored["changed"] is True
    assert director.snapshot() == start
    assert director.member(address="2001:db8::1", state="present")["changed"] is False

    removed = director.member(address="2001:db8::1", state="absent")
    assert removed["changed"] is True
    assert director.snapshot() == without(start, V6)
    assert director.member(address="2001:db8::1", state="absent")["changed"] is False


def test_virtual_service_and_port_narrow_the_scope(director):
    director.restore(TABLE)
    start = director.snapshot()
    some = director.member(address="10.0.0.1", state="drained",
                           virtual_service=["fwmark:7", "UDP 10.0.0.100:53"])
    assert sorted(m["container"] for m in some["members"]) == ["fwmark:7", "udp:10.0.0.100:53"]
    weights = director.weights("10.0.0.1:")
    assert weights[("-f 7", "10.0.0.1:0")] == 0 and weights[("-u 10.0.0.100:53", "10.0.0.1:53")] == 0
    assert weights[("-t 10.0.0.100:80", "10.0.0.1:8080")] == 5
    assert weights[("--sctp-service 10.0.0.100:3868", "10.0.0.1:3868")] == 2

    by_port = director.member(address="10.0.0.1", port=8080, state="drained")
    assert [m["name"] for m in by_port["members"]] == ["10.0.0.1:8080"]
    assert director.weights("10.0.0.1:")[("--sctp-service 10.0.0.100:3868", "10.0.0.1:3868")] == 2

    wrong_port = director.member(address="10.0.0.1", port=80, state="drained",
                                 virtual_service="tcp:10.0.0.100:80")
    assert wrong_port.failed and "real server 10.0.0.1:80: not found in virtual service" in wrong_port["msg"]

    v6 = director.member(address="2001:db8::1", state="drained", virtual_service="fwmark6:8")
    assert [m["container"] for m in v6["members"]] == ["fwmark6:8"]

    director.member(address="10.0.0.1", state="present")
    director.member(address="2001:db8::1", state="present")
    assert director.snapshot() == start


def test_present_sets_a_weight_and_shows_the_diff(director):
    director.restore(TABLE)
    result = director.member(address="10.0.0.2", port=80, weight=9, state="present")
    assert result["changed"] is True
    assert result["diff"] == {"before": {"tcp:10.0.0.100:80/10.0.0.2:80": {"state": "present", "weight": 1}},
                              "after": {"tcp:10.0.0.100:80/10.0.0.2:80": {"state": "present", "weight": 9}}}
    assert director.dests()[("-t 10.0.0.100:80", "10.0.0.2:80")]["weight"] == 9
    assert director.dests()[("-t 10.0.0.100:80", "10.0.0.2:80")]["fwd"] == "-g"
    assert director.member(address="10.0.0.2", port=80, weight=9, state="present")["changed"] is False


def test_add_destinations_with_forwarding_thresholds_and_tunnel(director):
    director.restore(TABLE)
    start = director.snapshot()
    args = dict(address="10.0.0.9", port=8080, state="present", forwarding="masq", weight=5,
                upper_threshold=200, lower_threshold=150,
                virtual_service=["tcp:10.0.0.100:80", "tcp:[2001:db8::100]:443"])
    failed = director.member(args)
    assert failed.failed and "forwarding: tunnel" in failed["msg"]      # IPv4 server, IPv6 service, NAT
    assert director.snapshot() == start

    args["virtual_service"] = ["tcp:10.0.0.100:80", "udp:10.0.0.100:53"]
    planned = director.member(args, check=True)
    assert planned["changed"] is True and [m["state_before"] for m in planned["members"]] == ["absent", "absent"]
    assert director.snapshot() == start
    added = director.member(args)
    assert added["changed"] is True
    dests = director.dests()
    for service in ("-t 10.0.0.100:80", "-u 10.0.0.100:53"):
        assert dests[(service, "10.0.0.9:8080")] == dict(
            fwd="-m", weight=5, tunnel="", upper=200, lower=150, active=0, inactive=0)
    assert director.member(args)["changed"] is False

    gue = dict(address="10.0.0.10", state="present", virtual_service="sctp:10.0.0.100:3868", forwarding="tunnel",
               tunnel_type="gue", tunnel_port=6081, tunnel_checksum="remcsum", weight=3)
    assert director.member(gue)["changed"] is True
    assert director.dests()[("--sctp-service 10.0.0.100:3868", "10.0.0.10:3868")]["tunnel"] == \
        "--tun-type gue --tun-port 6081 --tun-remcsum"
    drained = director.member(address="10.0.0.10", state="drained")
    assert drained["changed"] is True
    assert director.dests()[("--sctp-service 10.0.0.100:3868", "10.0.0.10:3868")]["tunnel"] == \
        "--tun-type gue --tun-port 6081 --tun-remcsum"

    route = director.member(address="10.0.0.11", state="present", virtual_service="fwmark:7")
    assert director.dests()[("-f 7", "10.0.0.11:0")]["fwd"] == "-g"
    assert route["members"][0]["weight"] == 1


def test_weight_memory_across_absent_and_a_corrupt_file(director):
    director.restore(TABLE)
    assert director.member(address="10.0.0.1", state="absent", virtual_service="tcp:10.0.0.100:80")["changed"]
    assert director.memory() == {"tcp:10.0.0.100:80 10.0.0.1:8080": 5}
    back = director.member(address="10.0.0.1", port=8080, state="present", virtual_service="tcp:10.0.0.100:80",
                           forwarding="masq", upper_threshold=100, lower_threshold=50)
    assert back["changed"] is True and back["members"][0]["weight"] == 5
    assert director.dests()[("-t 10.0.0.100:80", "10.0.0.1:8080")]["weight"] == 5

    director.member(address="10.0.0.1", state="drained", virtual_service="udp:10.0.0.100:53")
    with open(director.state_file, "w") as handle:
        handle.write("{ this is not json")
    restored = director.member(address="10.0.0.1", state="present", virtual_service="udp:10.0.0.100:53")
    assert restored["changed"] is True and restored["members"][0]["weight"] == 1
    assert any("not a gentle.lb weight memory" in w for w in director.warnings(restored))
    assert any("no weight remembered" in w for w in director.warnings(restored))


def test_existing_options_are_kept_and_reported(director):
    director.restore(TABLE)
    start = director.snapshot()
    result = director.member(address="10.0.0.1", port=53, state="present", forwarding="route", weight=3)
    assert result["changed"] is False
    assert any("forwarding=route (is tunnel)" in w and "kept" in w for w in director.warnings(result))
    assert director.snapshot() == start


def test_capacity_guard(director):
    director.restore("""
        -A -t 10.0.0.100:80 -s rr
        -a -t 10.0.0.100:80 -r 10.0.0.1:80 -g -w 1
        -a -t 10.0.0.100:80 -r 10.0.0.2:80 -g -w 0
        -a -t 10.0.0.100:80 -r 10.0.0.3:80 -g -w 2
        -A -t 10.0.0.101:80 -s rr
        -a -t 10.0.0.101:80 -r 10.0.0.1:80 -g -w 1
        -a -t 10.0.0.101:80 -r 10.0.0.2:80 -g -w 1
    """)
    start = director.snapshot()
    refused = director.member(address="10.0.0.1", state="drained", min_active=2)
    assert refused.failed
    assert refused["msg"] == ("virtual service tcp:10.0.0.100:80: taking 10.0.0.1:80 out would leave 1 of 3 "
                              "members in rotation and healthy, below min_active=2 (2); restore other members "
                              "first or lower min_active")
    assert director.snapshot() == start
    allowed = director.member(address="10.0.0.1", state="drained")        # default 1: one remains everywhere
    assert allowed["changed"] is True
    last = director.member(address="10.0.0.3", state="absent", min_active="34%")
    assert last.failed and "leave 0 of 3" in last["msg"] and "min_active=34% (2)" in last["msg"]
    assert director.member(address="10.0.0.3", state="drained", min_active=0)["changed"] is True


def test_info_module(director):
    director.restore(TABLE)
    one = director.info(virtual_service="udp:10.0.0.100:53", stats=True, rates=True)
    assert [s["name"] for s in one["services"]] == ["udp:10.0.0.100:53"]
    gue = [m for m in one["members"] if m["address"] == "10.0.0.1"][0]
    assert (gue["forwarding"], gue["tunnel_type"], gue["tunnel_port"], gue["tunnel_checksum"]) == \
        ("tunnel", "gue", 6080, "csum")
    assert set(gue["stats"]) == {"conns", "inpkts", "outpkts", "inbytes", "outbytes"}
    assert set(one["services"][0]["rates"]) == {"cps", "inpps", "outpps", "inbps", "outbps"}
    fw6 = director.info(virtual_service="FWM 8 IPv6", address="2001:db8::2")
    assert [(m["container"], m["name"], m["weight"]) for m in fw6["members"]] == [
        ("fwmark6:8", "[2001:db8::2]:0", 1)]


def test_warnings_for_sh_without_fallback_persistence_and_keepalived(director, fake_process):
    director.restore("""
        -A -t 10.0.0.100:80 -s sh
        -a -t 10.0.0.100:80 -r 10.0.0.1:80 -g -w 1
        -a -t 10.0.0.100:80 -r 10.0.0.2:80 -g -w 1
        -A -t 10.0.0.101:80 -s sh -b sh-fallback
        -a -t 10.0.0.101:80 -r 10.0.0.1:80 -g -w 1
        -a -t 10.0.0.101:80 -r 10.0.0.2:80 -g -w 1
        -A -t 10.0.0.102:80 -s rr -p 300
        -a -t 10.0.0.102:80 -r 10.0.0.1:80 -g -w 1
        -a -t 10.0.0.102:80 -r 10.0.0.2:80 -g -w 1
    """)
    keepalived = fake_process("keepalived")
    result = director.member(address="10.0.0.1", state="drained", check=True)
    warnings = director.warnings(result)
    assert any("tcp:10.0.0.100:80 uses the sh scheduler without sh-fallback" in w for w in warnings)
    assert not any("tcp:10.0.0.101:80" in w for w in warnings)
    assert any(w.startswith("virtual service tcp:10.0.0.102:80 is persistent and "
                            "net.ipv4.vs.expire_quiescent_template=0: ") for w in warnings)
    assert any(w.startswith("keepalived is running (pid %d)" % keepalived.pid) for w in warnings)
