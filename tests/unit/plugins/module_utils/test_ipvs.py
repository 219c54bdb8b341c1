# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/ipvs.py: parsers over real ipvsadm output
(tests/unit/fixtures/ipvs, captured under user-mode Linux), hostile input,
the virtual-service spec parser, the weight memory, error mapping, and the
whole plan/apply/wait path against a fake ipvsadm that behaves like the
kernel (an edit resets every option it is not given)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shlex
import stat
import subprocess
import time

import pytest

from ansible_collections.gentle.lb.plugins.module_utils import ipvs
from ansible_collections.gentle.lb.plugins.module_utils import member as core
from ansible_collections.gentle.lb.plugins.module_utils.member import (
    CommandError,
    GuardRefusedError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    Request,
    UnreachableError,
    WaitTimeoutError,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "ipvs")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def merged(*names):
    return ipvs.merge_listings([ipvs.parse_listing(fixture(n)) for n in names])


# --------------------------------------------------------------------------
# Parsers over the captured listings
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name, services, dests", [
    ("Ln.txt", 19, 32),
    ("Ln_exact.txt", 19, 32),
    ("Ln_nosort.txt", 19, 32),
    ("Ln_tun_info.txt", 19, 32),
    ("Ln_thresholds.txt", 19, 32),
    ("Ln_persistent_conn.txt", 19, 32),
    ("Ln_stats_exact.txt", 19, 32),
    ("Ln_rate_exact.txt", 19, 32),
    ("Ln_empty.txt", 0, 0),
    ("Ln_exact_empty.txt", 0, 0),
    ("Ln_daemon.txt", 0, 0),
    ("Ln_service.txt", 1, 3),
    ("Ln_service_v6.txt", 1, 3),
    ("Ln_service_fwmark.txt", 1, 1),
    ("Ln_service_after_restore.txt", 1, 5),
    ("Ln_service_weight70000.txt", 1, 3),
])
def test_every_listing_parses(name, services, dests):
    parsed = ipvs.parse_listing(fixture(name))
    assert len(parsed) == services
    assert sum(len(s.dests) for s in parsed) == dests


@pytest.mark.parametrize("name", ["Ln_stats.txt", "Ln_timeout.txt", "Lnc.txt", "Sn.txt"])
def test_outputs_never_requested_are_refused_not_guessed(name):
    # --stats without --exact abbreviates (150912K); the others are not listings.
    with pytest.raises(ipvs.ParseError):
        ipvs.parse_listing(fixture(name))


def test_service_lines_and_flags():
    table = merged("Ln_exact.txt")
    assert list(table) == [
        "tcp:10.0.0.100:80", "tcp:10.0.0.101:80", "tcp:10.0.0.102:8080", "tcp:10.0.0.103:443",
        "tcp:10.0.0.104:80", "tcp:10.0.0.110:80", "tcp:10.0.0.111:80", "tcp:10.0.0.112:80",
        "tcp:10.0.0.113:80", "tcp:10.0.0.114:80", "udp:10.0.0.100:53", "udp:10.0.0.105:5060",
        "udp:10.0.0.107:514", "sctp:10.0.0.106:3868", "tcp:[2001:db8::100]:443",
        "udp:[2001:db8::100]:53", "fwmark:1", "fwmark6:2", "fwmark:3"]
    persistent = table["tcp:10.0.0.101:80"]
    assert (persistent.scheduler, persistent.persistent, persistent.mask) == ("wlc", 300, "255.255.255.0")
    assert table["tcp:10.0.0.102:8080"].sched_flags == ["sh-fallback", "sh-port"]
    assert table["tcp:10.0.0.103:443"].sched_flags == ["mh-fallback", "mh-port"]
    assert table["udp:10.0.0.105:5060"].pe == "sip"
    assert table["udp:10.0.0.105:5060"].persistent == 60
    assert table["udp:10.0.0.107:514"].ops is True
    assert table["tcp:[2001:db8::100]:443"].mask == "64"
    fw6 = table["fwmark6:2"]
    assert (fw6.key.protocol, fw6.key.fwmark, fw6.key.family, fw6.scheduler) == ("fwmark", 2, 6, "lc")
    assert table["fwmark:3"].key.args() == ["-f", "3"]
    assert fw6.key.args() == ["-f", "2", "-6"]
    assert table["sctp:10.0.0.106:3868"].key.args() == ["--sctp-service", "10.0.0.106:3868"]


def test_merged_listing_holds_every_option_of_every_destination():
    table = merged("Ln_tun_info.txt", "Ln_thresholds.txt", "Ln_persistent_conn.txt")
    pool = table["tcp:10.0.0.100:80"].dests
    assert [(d.name, d.forwarding, d.weight, d.upper, d.lower) for d in pool.values()] == [
        ("172.16.1.2:80", "masq", 1, 0, 0),
        ("172.16.2.2:80", "masq", 5, 100, 50),
        ("172.16.3.2:80", "masq", 0, 0, 0)]
    assert (pool["172.16.1.2:80"].active, pool["172.16.1.2:80"].inactive) == (1, 1)
    tunnels = table["tcp:10.0.0.103:443"].dests
    assert [(d.name, d.tunnel_type, d.tunnel_port, d.tunnel_checksum) for d in tunnels.values()] == [
        ("10.1.0.3:443", "ipip", None, None),
        ("10.1.0.4:443", "gue", 6080, "nocsum"),
        ("10.1.0.5:443", "gre", None, "csum"),
        ("10.1.0.6:443", "gue", 6081, "remcsum"),
        ("[2001:db8::5]:443", "ipip", None, None)]
    assert table["tcp:10.0.0.101:80"].dests["172.16.1.2:80"].persistent == 1
    assert table["tcp:10.0.0.102:8080"].dests["172.16.1.2:8080"].upper == 20
    v6 = table["tcp:[2001:db8::100]:443"].dests["[2001:db8::2]:8443"]
    assert (v6.address, v6.port, v6.weight, v6.upper, v6.lower) == ("2001:db8::2", 8443, 0, 10, 5)
    assert table["tcp:10.0.0.104:80"].dests["10.1.0.7:80"].weight == 65535
    assert table["fwmark:1"].dests["10.1.0.9:0"].port == 0


def test_merged_listing_agrees_with_ipvsadm_save():
    """-Sn (no thresholds, but forwarding, weight, tunnel) as a cross-check of the listings."""
    table = merged("Ln_tun_info.txt", "Ln_thresholds.txt")
    flags = {"-g": "route", "-m": "masq", "-i": "tunnel"}
    seen = 0
    for line in fixture("Sn.txt").splitlines():
        words = shlex.split(line)
        if words[0] != "-a":
            continue
        rs = words.index("-r")
        spec = " ".join(words[1:rs])
        key = {"-t": "tcp:", "-u": "udp:", "--sctp-service": "sctp:"}
        if words[1] == "-f":
            name = "fwmark6:%s" % words[2] if "-6" in words[1:rs] else "fwmark:%s" % words[2]
        else:
            name = key[words[1]] + words[2]
        dest = table[name].dests[words[rs + 1]]
        assert dest.forwarding == flags[words[rs + 2]], spec
        assert dest.weight == int(words[words.index("-w") + 1])
        if "--tun-type" in words:
            assert dest.tunnel_type == words[words.index("--tun-type") + 1]
        if "--tun-port" in words:
            assert dest.tunnel_port == int(words[words.index("--tun-port") + 1])
        for checksum in ("nocsum", "csum", "remcsum"):
            if "--tun-" + checksum in words:
                assert dest.tunnel_checksum == checksum
        seen += 1
    assert seen == 32


def test_stats_and_rates():
    table = merged("Ln_stats_exact.txt", "Ln_rate_exact.txt")
    service = table["tcp:10.0.0.102:8080"]
    assert set(service.stats) == set(ipvs.STATS_COLUMNS)
    assert service.stats["inbytes"] > 10 ** 8          # --exact: no "150912K"
    assert set(service.dests["172.16.1.2:8080"].rates) == set(ipvs.RATE_COLUMNS)
    assert table["fwmark6:2"].stats is not None


def test_weight_above_65535_lists_as_is():
    service = ipvs.parse_listing(fixture("Ln_service_weight70000.txt"))[0]
    assert 70000 in [d.weight for d in service.dests.values()]


HEADER = ("Prot LocalAddress:Port Scheduler Flags\n"
          "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")


@pytest.mark.parametrize("body, why", [
    ("  -> 10.0.0.1:80 Route 1 0 0\n", "before any service"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.1:80 Teleport 1 0 0\n", "forwarding method"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.1:80 Route one 0 0\n", "not a number"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.1:80 Route -1 0 0\n", "negative"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.1:80 Route 1 0\n", "columns"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.1:80 Route 1 0 0 7\n", "columns"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.999:80 Route 1 0 0\n", "destination address"),
    ("TCP  10.0.0.100:80 wlc\n  -> 2001:db8::1:80 Route 1 0 0\n", "destination address"),
    ("TCP  10.0.0.100:80 wlc\n  -> web1:http Route 1 0 0\n", "destination address"),
    ("ICMP 10.0.0.100:80 wlc\n", "unknown protocol"),
    ("TCP  10.0.0.100:http wlc\n", "service address"),
    ("TCP  10.0.0.100:80\n", "no scheduler"),
    ("TCP  10.0.0.100:80 wlc persistent\n", "without a value"),
    ("TCP  10.0.0.100:80 wlc persistent soon\n", "not a number"),
    ("TCP  10.0.0.100:80 wlc quantum\n", "unknown service flag"),
    ("FWM  0 wlc\n", "not a firewall mark"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.1:８０ Route 1 0 0\n", "destination address"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.1:80 Route ² 0 0\n", "not a number"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.1:99999 Route 1 0 0\n", "destination address"),
    ("TCP  10.0.0.100:80 wlc\n  -> [2001:db8::1] Route 1 0 0\n", "destination address"),
    ("TCP  10.0.0.100:80 wlc\n  -> 10.0.0.1:80 Route 1 0 0; rm -rf /\n", "columns"),
])
def test_hostile_listings_are_refused(body, why):
    with pytest.raises(ipvs.ParseError) as info:
        ipvs.parse_listing(HEADER + body)
    assert why in info.value.msg
    assert "nothing was changed" in info.value.msg


def test_listing_without_header_is_refused():
    with pytest.raises(ipvs.ParseError):
        ipvs.parse_listing("TCP  10.0.0.100:80 wlc\n")


@pytest.mark.parametrize("tunnel, expected", [
    ("ipip", ("ipip", None, None)),
    ("gue:6080:-c", ("gue", 6080, "nocsum")),
    ("gue:6080:+c", ("gue", 6080, "csum")),
    ("gue:6081:r+c", ("gue", 6081, "remcsum")),
    ("gre:-c", ("gre", None, "nocsum")),
    ("gre:+c", ("gre", None, "csum")),
])
def test_tunnel_info_column(tunnel, expected):
    text = ("Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
            "TCP  10.0.0.100:80 wlc\n"
            "  -> 10.0.0.4:80                  Tunnel  %s   2      0          0         \n" % tunnel)
    dest = ipvs.parse_listing(text)[0].dests["10.0.0.4:80"]
    assert (dest.tunnel_type, dest.tunnel_port, dest.tunnel_checksum) == expected


@pytest.mark.parametrize("tunnel", ["vxlan", "gue:6080", "gue:x:-c", "gre", "gre:?c", "ipip:1"])
def test_bad_tunnel_info_is_refused(tunnel):
    text = ("Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
            "TCP  10.0.0.100:80 wlc\n"
            "  -> 10.0.0.4:80                  Tunnel  %s   2      0          0\n" % tunnel)
    with pytest.raises(ipvs.ParseError):
        ipvs.parse_listing(text)


def test_long_ipv6_and_odd_spacing_are_split_on_whitespace():
    text = ("IP Virtual Server version 1.2.1 (size=4096)\r\n" + HEADER +
            "TCP  [2001:db8:aaaa:bbbb:cccc:dddd:eeee:100]:443 wrr persistent 600 mask 128\n"
            "  -> [2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:443 Masq 3 12 4\t\n"
            "\n")
    service = ipvs.parse_listing(text)[0]
    assert service.name == "tcp:[2001:db8:aaaa:bbbb:cccc:dddd:eeee:100]:443"
    dest = service.dests["[2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:443"]
    assert (dest.weight, dest.active, dest.inactive) == (3, 12, 4)


# --------------------------------------------------------------------------
# Addresses and virtual-service specs
# --------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("10.0.0.1", ("10.0.0.1", 4)),
    ("2001:DB8:0:0:0:0:0:1", ("2001:db8::1", 6)),
    ("[2001:db8::1]", ("2001:db8::1", 6)),
    ("::ffff:10.0.0.1", ("::ffff:10.0.0.1", 6)),
    ("2001:db8:0:0:1:0:0:1", ("2001:db8::1:0:0:1", 6)),
])
def test_normalize_address(text, expected):
    assert ipvs.normalize_address(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("10.0.0.300", "not an IP address"),
    ("web1.example.com", "host names"),
    ("10.0.0.1:80", "port option"),
    ("fe80::1%eth0", "zone"),
    ("", "empty"),
    ("10.0.0.1; reboot", "not an IP address"),
    ("10.0.0.1 10.0.0.2", "not an IP address"),
    (None, "not an IP address"),
    # The whole string is the address: no stripping.
    ("10.0.0.1\n", "line break"),
    (" 10.0.0.1", "blanks around it"),
    ("10.0.0.1 ", "blanks around it"),
    ("\t10.0.0.1", "blanks around it"),
    ("[2001:db8::1]\n", "line break"),
    ("10.0.0.1\x00", "control character"),
])
def test_bad_addresses(text, fragment):
    with pytest.raises(InvalidInputError) as info:
        ipvs.normalize_address(text)
    assert fragment in info.value.msg
    assert "\n" not in info.value.msg
    assert info.value.msg.startswith("address ")


@pytest.mark.parametrize("spec, name, args", [
    ("tcp:192.168.100.11:80", "tcp:192.168.100.11:80", ["-t", "192.168.100.11:80"]),
    ("TCP:192.168.100.11:80", "tcp:192.168.100.11:80", ["-t", "192.168.100.11:80"]),
    ("udp:[2001:DB8::1]:53", "udp:[2001:db8::1]:53", ["-u", "[2001:db8::1]:53"]),
    ("sctp:10.0.0.1:3868", "sctp:10.0.0.1:3868", ["--sctp-service", "10.0.0.1:3868"]),
    ("tcp:10.0.0.1:0", "tcp:10.0.0.1:0", ["-t", "10.0.0.1:0"]),
    ("fwmark:7", "fwmark:7", ["-f", "7"]),
    ("fwmark:0x10", "fwmark:16", ["-f", "16"]),
    ("fwmark6:7", "fwmark6:7", ["-f", "7", "-6"]),
    ("FWM 7", "fwmark:7", ["-f", "7"]),
    ("FWM  7 IPv6", "fwmark6:7", ["-f", "7", "-6"]),
    ("TCP  10.0.0.100:80", "tcp:10.0.0.100:80", ["-t", "10.0.0.100:80"]),
    ("UDP  [2001:db8::100]:53", "udp:[2001:db8::100]:53", ["-u", "[2001:db8::100]:53"]),
])
def test_service_specs(spec, name, args):
    key = ipvs.parse_service_spec(spec)
    assert key.name == name
    assert key.args() == args


@pytest.mark.parametrize("spec, fragment", [
    ("", "empty"),
    ("10.0.0.1:80", "unknown protocol 10.0.0.1"),
    ("tcp", "no protocol"),
    ("icmp:10.0.0.1:80", "unknown protocol"),
    ("tcp:10.0.0.1", "no port"),
    ("tcp:[2001:db8::1]", "no port"),
    ("tcp:2001:db8::1:53", "must be in brackets"),
    ("tcp:10.0.0.1:65536", "out of range"),
    ("tcp:10.0.0.1:http", "not a port number"),
    ("tcp:10.0.0.300:80", "not an IP address"),
    ("tcp:lb.example.com:80", "not an IP address"),
    ("fwmark:0", "out of range"),
    ("fwmark:4294967296", "out of range"),
    ("fwmark:seven", "not a number"),
    ("FWM 7 IPv4", "not understood"),
    ("TCP 10.0.0.1:80 wlc", "not understood"),
    ("tcp:[2001:db8::1:53", "not understood"),
    # The whole string is the name: blanks around it, line breaks and tabs
    # are refused, never stripped (int() and ipaddress would accept some).
    ("tcp:10.0.0.1:80\n", "line break"),
    (" tcp:10.0.0.1:80 ", "blanks around it"),
    ("fwmark:7\n", "line break"),
    ("FWM 7\n", "line break"),
    ("TCP\t10.0.0.100:80", "control character"),
    ("tcp:10.0.0.1:\n80", "line break"),
    ("tcp:10.0.0.1: 80", "not understood"),
    ("tcp: 10.0.0.1:80", "not understood"),
    ("fwmark: 7", "not understood"),
    ("fwmark:+7", "not a number"),
    ("fwmark:1_0", "not a number"),
    ("tcp:10.0.0.1:+80", "not a port number"),
])
def test_bad_service_specs(spec, fragment):
    with pytest.raises(InvalidInputError) as info:
        ipvs.parse_service_spec(spec)
    assert fragment in info.value.msg
    assert info.value.msg.startswith("virtual_service")
    assert "\n" not in info.value.msg


def test_service_names_are_canonical_and_deduplicated():
    assert ipvs.service_names(["tcp:10.0.0.1:80", "TCP 10.0.0.1:80", "fwmark:7"]) == [
        "tcp:10.0.0.1:80", "fwmark:7"]
    assert ipvs.service_names("udp:[2001:db8::1]:53") == ["udp:[2001:db8::1]:53"]
    assert ipvs.service_names(None) is None
    assert ipvs.service_names([]) is None


@pytest.mark.parametrize("port, ok", [(0, True), (80, True), (65535, True), (65536, False), (-1, False),
                                      ("80", True), ("x", False), ("80\n", False), (" 80", False),
                                      ("+80", False), (True, False), (None, False)])
def test_ports(port, ok):
    if ok:
        assert ipvs.check_port(port) == int(port)
    else:
        with pytest.raises(InvalidInputError):
            ipvs.check_port(port)


def test_selector():
    sel = ipvs.selector("2001:DB8::1", 443)
    assert (sel.address, sel.port) == ("2001:db8::1", 443)
    assert ipvs.selector(None) is None
    assert ipvs.selector(None, 80).port == 80


# --------------------------------------------------------------------------
# Error mapping (stderr captured from the real ipvsadm)
# --------------------------------------------------------------------------

ERROR_CLASSES = {
    "delete_missing_dest": NotFoundError,
    "edit_missing_dest": NotFoundError,
    "duplicate_dest": CommandError,
    "dest_missing_service": NotFoundError,
    "dest_service_no_port": NotFoundError,
    "duplicate_service": CommandError,
    "delete_missing_service": NotFoundError,
    "edit_missing_service": NotFoundError,
    "list_missing_service": NotFoundError,
    "bad_scheduler": CommandError,
    "bad_pe": CommandError,
    "bad_rs_address": InvalidInputError,
    "bad_rs_port": InvalidInputError,
    "bad_rs_v6_no_port": InvalidInputError,
    "bad_vip": InvalidInputError,
    "v6_vip_no_brackets": NotFoundError,
    "negative_weight": InvalidInputError,
    "thresholds_inverted": InvalidInputError,
    "v6_rs_in_v4_no_tunnel": InvalidInputError,
    "dr_forces_service_port": NotFoundError,
    "save_with_service": InvalidInputError,
    "no_ipvs_kernel": UnreachableError,
    "not_root": PermissionDeniedError,
    "not_root_write": PermissionDeniedError,
}


def captured_errors():
    cases = []
    for name in ("errors.json", "environment_errors.json"):
        for case in json.loads(fixture(name)):
            if case["rc"] != 0:
                cases.append(case)
    return cases


@pytest.mark.parametrize("case", captured_errors(), ids=lambda c: c["name"])
def test_captured_errors_map_to_core_errors(case):
    error = ipvs.classify_failure(case["cmd"][1:], case["rc"], case["stderr"], "tcp:10.0.0.100:80",
                                  "172.16.1.2:80")
    assert isinstance(error, ERROR_CLASSES[case["name"]])
    assert error.__class__.__name__ == ERROR_CLASSES[case["name"]].__name__
    assert "\n" not in error.msg
    assert "; " in error.msg                     # "<what happened>; <what to do>"
    assert "FATAL" not in error.msg              # modprobe's noise line is dropped


def test_kernel_and_privilege_messages():
    cases = dict((c["name"], c) for c in json.loads(fixture("environment_errors.json")))
    kernel = ipvs.classify_failure(["-Ln"], 2, cases["no_ipvs_kernel"]["stderr"])
    assert "no IP Virtual Server" in kernel.msg and "modprobe ip_vs" in kernel.msg
    assert "Protocol not available" in kernel.msg
    root = ipvs.classify_failure(["-Ln"], 2, cases["not_root"]["stderr"])
    assert "must be root" in root.msg and "become" in root.msg


def test_missing_ipvsadm_says_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    calls = []
    driver = ipvs.Ipvsadm(runner=lambda argv, timeout, stdin=None: calls.append(argv))
    with pytest.raises(CommandError) as info:
        driver.listing("tun_info")
    assert "not installed" in info.value.msg and "install the ipvsadm package" in info.value.msg
    assert calls == []


def test_ipvsadm_is_found_in_path_only(tmp_path):
    exe = tmp_path / "ipvsadm"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert ipvs.find_ipvsadm(str(tmp_path)) == str(exe)
    assert ipvs.find_ipvsadm("") is None


def test_runner_oserror_is_mapped():
    def denied(argv, timeout, stdin=None):
        raise OSError(13, "Permission denied")
    with pytest.raises(PermissionDeniedError):
        ipvs.Ipvsadm(denied, binary="/usr/sbin/ipvsadm").listing("tun_info")


# --------------------------------------------------------------------------
# The full option restatement
# --------------------------------------------------------------------------

@pytest.mark.parametrize("options, weight, argv", [
    (dict(forwarding="route", upper_threshold=0, lower_threshold=0), 0, ["-g", "-w", "0", "-x", "0", "-y", "0"]),
    (dict(forwarding="masq", upper_threshold=100, lower_threshold=50), 5,
     ["-m", "-w", "5", "-x", "100", "-y", "50"]),
    (dict(forwarding="tunnel", tunnel_type="ipip"), 2, ["-i", "-w", "2", "-x", "0", "-y", "0"]),
    (dict(forwarding="tunnel", tunnel_type="gue", tunnel_port=6080, tunnel_checksum="nocsum"), 0,
     ["-i", "-w", "0", "-x", "0", "-y", "0", "--tun-type", "gue", "--tun-port", "6080", "--tun-nocsum"]),
    (dict(forwarding="tunnel", tunnel_type="gre", tunnel_checksum="csum"), 1,
     ["-i", "-w", "1", "-x", "0", "-y", "0", "--tun-type", "gre", "--tun-csum"]),
    (dict(forwarding="local"), 3, ["-g", "-w", "3", "-x", "0", "-y", "0"]),
    (dict(), 1, ["-g", "-w", "1", "-x", "0", "-y", "0"]),
])
def test_dest_options(options, weight, argv):
    assert ipvs.dest_options(options, weight) == argv


@pytest.mark.parametrize("options, fragment", [
    (dict(forwarding="nat"), "not one of"),
    (dict(upper_threshold=-1), "out of range"),
    (dict(upper_threshold=10, lower_threshold=20), "above upper_threshold"),
    (dict(lower_threshold=5), "above upper_threshold"),
    (dict(forwarding="masq", tunnel_type="gre"), "only used with forwarding: tunnel"),
    (dict(forwarding="tunnel", tunnel_type="gue"), "needs tunnel_port"),
    (dict(forwarding="tunnel", tunnel_type="gre", tunnel_port=6080), "only used with tunnel_type: gue"),
    (dict(forwarding="tunnel", tunnel_type="gue", tunnel_port=0), "out of range"),
    (dict(forwarding="tunnel", tunnel_type="ipip", tunnel_checksum="csum"), "gue or gre"),
    (dict(forwarding="tunnel", tunnel_type="gre", tunnel_checksum="remcsum"), "only used with tunnel_type: gue"),
    (dict(forwarding="tunnel", tunnel_type="vxlan"), "not one of"),
])
def test_bad_dest_options(options, fragment):
    with pytest.raises(InvalidInputError) as info:
        ipvs.validate_dest_options(options)
    assert fragment in info.value.msg


# --------------------------------------------------------------------------
# The weight memory
# --------------------------------------------------------------------------

def test_memory_round_trip_and_file_shape(tmp_path):
    path = str(tmp_path / "sub" / "weights.json")
    memory = ipvs.WeightMemory(path, clock=lambda: 1700000000)
    assert memory.get("tcp:10.0.0.1:80 10.0.0.2:80") is None
    memory.remember("tcp:10.0.0.1:80 10.0.0.2:80", 7)
    memory.remember("fwmark6:2 [2001:db8::1]:0", 3)
    data = json.loads(open(path).read())
    assert data == {"version": 1, "weights": {
        "tcp:10.0.0.1:80 10.0.0.2:80": {"weight": 7, "drained_at": 1700000000},
        "fwmark6:2 [2001:db8::1]:0": {"weight": 3, "drained_at": 1700000000}}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    again = ipvs.WeightMemory(path)
    assert again.get("tcp:10.0.0.1:80 10.0.0.2:80") == 7
    again.forget("tcp:10.0.0.1:80 10.0.0.2:80")
    assert ipvs.WeightMemory(path).get("tcp:10.0.0.1:80 10.0.0.2:80") is None
    assert ipvs.WeightMemory(path).get("fwmark6:2 [2001:db8::1]:0") == 3
    leftovers = sorted(os.listdir(str(tmp_path / "sub")))
    assert leftovers == ["weights.json", "weights.json.lock"]


def test_memory_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "weights.json")
    ipvs.WeightMemory(path).remember("a", 5)
    before = open(path).read()

    def crash(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ipvs.os, "replace", crash)
    with pytest.raises(CommandError) as info:
        ipvs.WeightMemory(path).remember("b", 6)
    assert "No space left" in info.value.msg and path in info.value.msg
    monkeypatch.undo()
    assert open(path).read() == before                     # the old file is whole
    assert sorted(os.listdir(str(tmp_path))) == ["weights.json", "weights.json.lock"]  # no temp file left


def test_memory_merges_concurrent_writers(tmp_path):
    path = str(tmp_path / "weights.json")
    first, second = ipvs.WeightMemory(path), ipvs.WeightMemory(path)
    assert first.get("x") is None and second.get("y") is None   # both loaded an empty file
    first.remember("x", 2)
    second.remember("y", 3)                                      # re-reads under the lock
    assert ipvs.WeightMemory(path).get("x") == 2
    assert ipvs.WeightMemory(path).get("y") == 3


@pytest.mark.parametrize("content", [
    "{not json",
    "[]",
    '{"weights": []}',
    '{"weights": {"a": {"weight": "five"}}}',
    '{"weights": {"a": {"weight": 0}}}',
    '{"weights": {"a": {"weight": 70000}}}',
    '{"weights": {"a": {"weight": true}}}',
    '{"version": 1}',
])
def test_corrupt_memory_is_reported_and_kept_aside(tmp_path, content):
    path = str(tmp_path / "weights.json")
    with open(path, "w") as handle:
        handle.write(content)
    memory = ipvs.WeightMemory(path)
    assert memory.get("a") is None
    assert len(memory.warnings) == 1 and "not a gentle.lb weight memory" in memory.warnings[0]
    assert open(path).read() == content                  # reading never rewrites it
    memory.remember("b", 4)
    assert open(path + ".corrupt").read() == content
    assert ipvs.WeightMemory(path).get("b") == 4


def test_empty_memory_file_is_fine(tmp_path):
    path = tmp_path / "weights.json"
    path.write_text("")
    memory = ipvs.WeightMemory(str(path))
    assert memory.get("a") is None and memory.warnings == []


def test_memory_in_unwritable_place(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    memory = ipvs.WeightMemory(str(blocker / "weights.json"))
    with pytest.raises(CommandError) as info:
        memory.remember("a", 1)
    assert "state_file" in info.value.msg and "set state_file" in info.value.msg


def test_memory_permission_denied(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise IOError(13, "Permission denied")
    memory = ipvs.WeightMemory(str(tmp_path / "w.json"))
    monkeypatch.setattr(ipvs.tempfile, "mkstemp", denied)
    with pytest.raises(PermissionDeniedError) as info:
        memory.remember("a", 1)
    assert "run the task as root" in info.value.msg


# --------------------------------------------------------------------------
# A fake ipvsadm that behaves like the kernel, and the whole path through the core
# --------------------------------------------------------------------------

class FakeClock(object):
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeKernel(object):
    """Services and destinations, edited by ipvsadm argv the way the kernel
    does it: ``-e`` starts from ``-g -w 1``, no thresholds, tunnel ipip.
    ``drain`` maps (service, dest) -> seconds after which ActiveConn drops to 0."""

    def __init__(self, clock=None):
        self.services = {}      # name -> dict(key=ServiceKey, sched=, flags=str, dests={name: dict})
        self.calls = []          # the argv of every ipvsadm command (each line of an ipvsadm -R too)
        self.processes = 0       # ipvsadm processes started
        self.clock = clock
        self.active = {}        # (service, dest) -> (count, until)
        self.fail = {}          # first argv word -> (rc, stderr)

    def service(self, spec, sched="wlc", flags=""):
        key = ipvs.parse_service_spec(spec)
        self.services[key.name] = dict(key=key, sched=sched, flags=flags, dests={})
        return key.name

    def dest(self, service, name, fwd="Route", weight=1, upper=0, lower=0, tun=None, active=0,
             inactive=0, persistent=0):
        self.services[service]["dests"][name] = dict(fwd=fwd, weight=weight, upper=upper, lower=lower,
                                                     tun=tun, active=active, inactive=inactive,
                                                     persistent=persistent)

    def hold(self, service, dest, count, until):
        self.services[service]["dests"][dest]["active"] = count
        self.active[(service, dest)] = until

    def _tick(self):
        for (service, dest), until in self.active.items():
            record = self.services.get(service, {}).get("dests", {}).get(dest)
            if record is not None and self.clock is not None and self.clock.now >= until:
                record["active"] = 0

    def __call__(self, argv, timeout=None, stdin=None):
        self.processes += 1
        if argv[1:] == ["-R"]:
            # ipvsadm -R: every line is run in turn; errors go to stderr and
            # only the last line's exit status is returned.
            rc, out, err = 0, "", ""
            for line in stdin.splitlines():
                rc, line_out, line_err = self.one(line.split())
                out += line_out
                err += line_err
            return rc, out, err
        return self.one(argv[1:])

    def one(self, args):
        self.calls.append(args)
        if args and args[0] in self.fail:
            rc, err = self.fail[args[0]]
            return rc, "", err
        self._tick()
        if args[:2] == ["-L", "-n"]:
            return self.render(args[3:])
        return self.write(args)

    def render(self, words):
        option = [w for w in words if w.startswith("--")]
        fmt = {"--tun-info": "tun_info", "--thresholds": "thresholds",
               "--persistent-conn": "persistent_conn", "--stats": "stats", "--rate": "rate"}.get(
                   option[0] if option else None, "default")
        only = None
        if len(words) > len(option):
            only = ipvs.parse_service_spec(self._spec(["-L"] + words[len(option):])).name
            if only not in self.services:
                return 1, "", "No such service\n"
        lines = [] if only else ["IP Virtual Server version 1.2.1 (size=4096)"]
        if fmt == "thresholds":
            lines += ["Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ",
                      "  -> RemoteAddress:Port"]
        elif fmt == "persistent_conn":
            lines += ["Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ",
                      "  -> RemoteAddress:Port"]
        elif fmt == "tun_info":
            lines += ["Prot LocalAddress:Port Scheduler Flags",
                      "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn"]
        else:
            lines += ["Prot LocalAddress:Port Scheduler Flags",
                      "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
        for service in self.services.values():
            key = service["key"]
            if only and key.name != only:
                continue
            if key.protocol == "fwmark":
                head = "FWM  %d%s" % (key.fwmark, " IPv6" if key.family == 6 else "")
            else:
                head = "%-4s %s" % (key.protocol.upper(), ipvs.endpoint(key.address, key.port))
            lines.append(("%s %s %s" % (head, service["sched"], service["flags"])).rstrip())
            for name, d in service["dests"].items():
                if fmt == "thresholds":
                    cols = [d["upper"], d["lower"], d["active"], d["inactive"]]
                elif fmt == "persistent_conn":
                    cols = [d["weight"], d["persistent"], d["active"], d["inactive"]]
                elif fmt == "tun_info":
                    cols = [d["fwd"], d["tun"] or "n/a", d["weight"], d["active"], d["inactive"]]
                else:
                    cols = [d["fwd"], d["weight"], d["active"], d["inactive"]]
                lines.append("  -> %-28s %s" % (name, " ".join("%-6s" % c for c in cols)))
        return 0, "\n".join(lines) + "\n", ""

    def write(self, args):
        op = args[0]
        key = ipvs.parse_service_spec(self._spec(args))
        service = self.services.get(key.name)
        if service is None:
            return 255, "", "Service not defined\n"
        name = args[args.index("-r") + 1]
        dests = service["dests"]
        if op == "-d":
            if name not in dests:
                return 255, "", "No such destination\n"
            del dests[name]
            return 0, "", ""
        # -a / -e: every option starts from the kernel's defaults.
        record = dict(fwd="Route", weight=1, upper=0, lower=0, tun=None, active=0, inactive=0, persistent=0)
        if op == "-e":
            if name not in dests:
                return 255, "", "No such destination\n"
            old = dests[name]
            record.update(active=old["active"], inactive=old["inactive"], persistent=old["persistent"])
        elif name in dests:
            return 255, "", "Destination already exists\n"
        i = args.index("-r") + 2
        tun_type, tun_port, csum = "ipip", None, "-c"
        while i < len(args):
            word = args[i]
            if word in ("-g", "-m", "-i"):
                record["fwd"] = {"-g": "Route", "-m": "Masq", "-i": "Tunnel"}[word]
            elif word == "-w":
                record["weight"] = int(args[i + 1])
                i += 1
            elif word == "-x":
                record["upper"] = int(args[i + 1])
                i += 1
            elif word == "-y":
                record["lower"] = int(args[i + 1])
                i += 1
            elif word == "--tun-type":
                tun_type = args[i + 1]
                i += 1
            elif word == "--tun-port":
                tun_port = args[i + 1]
                i += 1
            elif word in ("--tun-nocsum", "--tun-csum", "--tun-remcsum"):
                csum = {"--tun-nocsum": "-c", "--tun-csum": "+c", "--tun-remcsum": "r+c"}[word]
            else:
                raise AssertionError("unexpected ipvsadm option %s" % word)
            i += 1
        if record["fwd"] == "Tunnel":
            record["tun"] = {"ipip": "ipip", "gue": "gue:%s:%s" % (tun_port, csum),
                             "gre": "gre:%s" % csum}[tun_type]
        dests[name] = record
        return 0, "", ""

    @staticmethod
    def _spec(args):
        if args[1] == "-f":
            return ("fwmark6:%s" if "-6" in args[:4] else "fwmark:%s") % args[2]
        proto = {"-t": "tcp", "-u": "udp", "--sctp-service": "sctp"}[args[1]]
        return "%s:%s" % (proto, args[2])

    def writes(self):
        return [c for c in self.calls if c[0] in ("-a", "-e", "-d")]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def kernel(clock):
    k = FakeKernel(clock)
    web = k.service("tcp:10.0.0.100:80")
    k.dest(web, "10.0.0.1:80", fwd="Masq", weight=5, upper=100, lower=50)
    k.dest(web, "10.0.0.2:80", fwd="Masq", weight=1)
    dns = k.service("udp:10.0.0.100:53", sched="rr")
    k.dest(dns, "10.0.0.1:53", fwd="Tunnel", weight=3, tun="gue:6080:+c")
    k.dest(dns, "10.0.0.2:53", fwd="Route", weight=3)
    mark = k.service("fwmark6:7", sched="lc")
    k.dest(mark, "[2001:db8::1]:0", weight=2, tun=None)
    k.dest(mark, "[2001:db8::2]:0", weight=2)
    return k


def backend_for(kernel, tmp_path, **kwargs):
    kwargs.setdefault("proc_root", str(tmp_path / "proc"))
    kwargs.setdefault("configs", ())
    return ipvs.IPVSBackend(ipvsadm=ipvs.Ipvsadm(runner=kernel, binary="/usr/sbin/ipvsadm"),
                            memory=ipvs.WeightMemory(str(tmp_path / "weights.json")), **kwargs)


def request(state, address, port=None, services=None, **kwargs):
    options = dict((k, kwargs.pop(k, None)) for k in ipvs.DEST_OPTION_KEYS)
    kwargs.setdefault("wait_timeout", 10)
    return Request(state, ipvs.selector(address, port), containers=ipvs.service_names(services),
                   options=options, **kwargs)


def run(kernel, tmp_path, req, clock=None, check_mode=False, **kwargs):
    """core.run against the fake kernel; the backend is kept as kernel.backend."""
    kernel.backend = backend_for(kernel, tmp_path, **kwargs)
    clock = clock or FakeClock()
    return core.run(kernel.backend, req, check_mode=check_mode, clock=clock.clock, sleep=clock.sleep)


def dest(kernel, service, name):
    return kernel.services[service]["dests"][name]


def test_drain_everywhere_restates_every_option_and_remembers_weights(kernel, tmp_path):
    result = run(kernel, tmp_path, request("drained", "10.0.0.1"))
    assert result["changed"] is True
    assert sorted(m["container"] for m in result["members"]) == ["tcp:10.0.0.100:80", "udp:10.0.0.100:53"]
    assert kernel.writes() == [
        ["-e", "-t", "10.0.0.100:80", "-r", "10.0.0.1:80", "-m", "-w", "0", "-x", "100", "-y", "50"],
        ["-e", "-u", "10.0.0.100:53", "-r", "10.0.0.1:53", "-i", "-w", "0", "-x", "0", "-y", "0",
         "--tun-type", "gue", "--tun-port", "6080", "--tun-csum"]]
    # Nothing was lost: the kernel model reset everything the edit did not restate.
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.1:80") == dict(
        fwd="Masq", weight=0, upper=100, lower=50, tun=None, active=0, inactive=0, persistent=0)
    assert dest(kernel, "udp:10.0.0.100:53", "10.0.0.1:53")["tun"] == "gue:6080:+c"
    memory = ipvs.WeightMemory(str(tmp_path / "weights.json"))
    assert memory.get("tcp:10.0.0.100:80 10.0.0.1:80") == 5
    assert memory.get("udp:10.0.0.100:53 10.0.0.1:53") == 3
    assert [m["state"] for m in result["members"]] == ["drained", "drained"]
    assert [m["weight_before"] for m in result["members"]] == [5, 3]

    again = run(kernel, tmp_path, request("drained", "10.0.0.1"))
    assert again["changed"] is False
    assert len(kernel.writes()) == 2
    assert ipvs.WeightMemory(str(tmp_path / "weights.json")).get("tcp:10.0.0.100:80 10.0.0.1:80") == 5

    restored = run(kernel, tmp_path, request("present", "10.0.0.1"))
    assert restored["changed"] is True
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.1:80")["weight"] == 5
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.1:80")["upper"] == 100
    assert dest(kernel, "udp:10.0.0.100:53", "10.0.0.1:53")["weight"] == 3
    assert dest(kernel, "udp:10.0.0.100:53", "10.0.0.1:53")["tun"] == "gue:6080:+c"
    assert ipvs.WeightMemory(str(tmp_path / "weights.json")).get("tcp:10.0.0.100:80 10.0.0.1:80") is None
    assert run(kernel, tmp_path, request("present", "10.0.0.1"))["changed"] is False


def test_check_mode_writes_nothing(kernel, tmp_path):
    result = run(kernel, tmp_path, request("drained", "10.0.0.1"), check_mode=True)
    assert result["changed"] is True
    assert [m["state"] for m in result["members"]] == ["drained", "drained"]
    assert kernel.writes() == []
    assert not os.path.exists(str(tmp_path / "weights.json"))
    assert result["diff"]["after"]["tcp:10.0.0.100:80/10.0.0.1:80"] == {"state": "drained", "weight": 0}


def test_scope_by_service_and_port(kernel, tmp_path):
    result = run(kernel, tmp_path, request("drained", "10.0.0.1", services=["udp:10.0.0.100:53"]))
    assert [m["container"] for m in result["members"]] == ["udp:10.0.0.100:53"]
    result = run(kernel, tmp_path, request("drained", "10.0.0.1", port=80))
    assert [m["name"] for m in result["members"]] == ["10.0.0.1:80"]
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.1:80")["weight"] == 0


def test_fwmark6_and_ipv6_addresses(kernel, tmp_path):
    result = run(kernel, tmp_path, request("drained", "2001:DB8:0::1", services=["FWM 7 IPv6"]))
    assert result["members"][0]["container"] == "fwmark6:7"
    assert kernel.writes() == [["-e", "-f", "7", "-6", "-r", "[2001:db8::1]:0", "-g", "-w", "0", "-x", "0",
                                "-y", "0"]]


def test_present_without_memory_uses_1_and_says_so(kernel, tmp_path):
    dest(kernel, "tcp:10.0.0.100:80", "10.0.0.2:80")["weight"] = 0
    result = run(kernel, tmp_path, request("present", "10.0.0.2"))
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.2:80")["weight"] == 1
    assert any("no weight remembered" in w for w in result["warnings"])


def test_present_with_weight_sets_it_on_a_member_in_rotation(kernel, tmp_path):
    result = run(kernel, tmp_path, request("present", "10.0.0.2", weight=9, services=["tcp:10.0.0.100:80"]))
    assert result["changed"] is True
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.2:80")["weight"] == 9
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.2:80")["fwd"] == "Masq"


def test_add_with_forwarding_thresholds_and_tunnel(kernel, tmp_path):
    req = request("present", "10.0.0.9", services=["udp:10.0.0.100:53"], weight=4, forwarding="tunnel",
                  tunnel_type="gue", tunnel_port=6090, tunnel_checksum="remcsum", upper_threshold=10,
                  lower_threshold=5)
    result = run(kernel, tmp_path, req)
    assert result["changed"] is True
    assert kernel.writes() == [["-a", "-u", "10.0.0.100:53", "-r", "10.0.0.9:53", "-i", "-w", "4", "-x", "10",
                                "-y", "5", "--tun-type", "gue", "--tun-port", "6090", "--tun-remcsum"]]
    entry = result["members"][0]
    assert (entry["state_before"], entry["state"], entry["weight"]) == ("absent", "present", 4)
    assert (entry["tunnel_type"], entry["tunnel_port"], entry["tunnel_checksum"]) == ("gue", 6090, "remcsum")
    assert run(kernel, tmp_path, req)["changed"] is False


def test_add_defaults_to_route_on_the_service_port(kernel, tmp_path):
    run(kernel, tmp_path, request("present", "10.0.0.9", services=["tcp:10.0.0.100:80"]))
    assert kernel.writes() == [["-a", "-t", "10.0.0.100:80", "-r", "10.0.0.9:80", "-g", "-w", "1", "-x", "0",
                                "-y", "0"]]


def test_add_to_fwmark_uses_port_0(kernel, tmp_path):
    run(kernel, tmp_path, request("present", "2001:db8::9", services=["fwmark6:7"]))
    assert kernel.writes()[0][:6] == ["-a", "-f", "7", "-6", "-r", "[2001:db8::9]:0"]


def test_add_refused_when_route_would_change_the_port(kernel, tmp_path):
    with pytest.raises(InvalidInputError) as info:
        run(kernel, tmp_path, request("present", "10.0.0.9", port=8080, services=["tcp:10.0.0.100:80"]))
    assert "forwarding: masq" in info.value.msg
    assert kernel.writes() == []


def test_add_refused_for_mixed_families_without_tunnel(kernel, tmp_path):
    with pytest.raises(InvalidInputError) as info:
        run(kernel, tmp_path, request("present", "2001:db8::9", services=["tcp:10.0.0.100:80"],
                                      forwarding="masq"))
    assert "forwarding: tunnel" in info.value.msg
    assert kernel.writes() == []


def test_readd_after_absent_restores_remembered_weight(kernel, tmp_path):
    run(kernel, tmp_path, request("absent", "10.0.0.1", services=["tcp:10.0.0.100:80"]))
    assert "10.0.0.1:80" not in kernel.services["tcp:10.0.0.100:80"]["dests"]
    run(kernel, tmp_path, request("present", "10.0.0.1", services=["tcp:10.0.0.100:80"], forwarding="masq"))
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.1:80")["weight"] == 5


def test_absent_drains_waits_then_deletes(kernel, tmp_path, clock):
    kernel.hold("tcp:10.0.0.100:80", "10.0.0.1:80", 2, until=3.0)
    req = request("absent", "10.0.0.1", services=["tcp:10.0.0.100:80"])
    result = run(kernel, tmp_path, req, clock=clock)
    writes = kernel.writes()
    assert writes[0][:1] == ["-e"] and "-w" in writes[0] and writes[0][writes[0].index("-w") + 1] == "0"
    assert writes[1] == ["-d", "-t", "10.0.0.100:80", "-r", "10.0.0.1:80"]
    assert 3.0 <= result["waited"] < 3.6
    assert result["members"][0]["state"] == "absent"
    again = run(kernel, tmp_path, request("absent", "10.0.0.1", services=["tcp:10.0.0.100:80"]))
    assert again["changed"] is False and "already absent" in again["msg"]


def test_drain_waits_for_active_connections_and_can_count_inactive(kernel, tmp_path, clock):
    kernel.hold("tcp:10.0.0.100:80", "10.0.0.1:80", 3, until=2.0)
    dest(kernel, "tcp:10.0.0.100:80", "10.0.0.1:80")["inactive"] = 4
    req = request("drained", "10.0.0.1", services=["tcp:10.0.0.100:80"])
    result = run(kernel, tmp_path, req, clock=clock)
    assert 2.0 <= result["waited"] < 2.6
    assert result["members"][0]["inactive_connections"] == 4
    with pytest.raises(WaitTimeoutError) as info:
        run(kernel, tmp_path, request("drained", "10.0.0.1", services=["tcp:10.0.0.100:80"], wait_timeout=1),
            clock=clock, count_inactive=True)
    assert "4 sessions" in info.value.msg
    assert info.value.result["members"][0]["state"] == "drained"


def test_persistent_templates_counted_on_request(kernel, tmp_path):
    dest(kernel, "tcp:10.0.0.100:80", "10.0.0.1:80")["persistent"] = 2
    plain = run(kernel, tmp_path, request("drained", "10.0.0.1", services=["tcp:10.0.0.100:80"]))
    assert plain["members"][0]["sessions"] == 0 and plain["members"][0]["persistent_connections"] is None
    assert not any("--persistent-conn" in c for c in kernel.calls)       # not read unless counted
    info = core.describe(backend_for(kernel, tmp_path, read_persistent=True), ["tcp:10.0.0.100:80"])
    assert [m["persistent_connections"] for m in info["members"]] == [2, 0]
    with pytest.raises(WaitTimeoutError):
        run(kernel, tmp_path, request("drained", "10.0.0.1", services=["tcp:10.0.0.100:80"], wait_timeout=1),
            count_persistent=True)


def test_force_on_absent_deletes_and_reports_expire_nodest_conn(kernel, tmp_path, clock):
    proc = tmp_path / "proc" / "sys" / "net" / "ipv4" / "vs"
    proc.mkdir(parents=True)
    (proc / "expire_nodest_conn").write_text("0\n")
    kernel.hold("tcp:10.0.0.100:80", "10.0.0.1:80", 2, until=100.0)
    req = request("absent", "10.0.0.1", services=["tcp:10.0.0.100:80"], wait_timeout=1, on_timeout="force")
    result = run(kernel, tmp_path, req, clock=clock)
    assert kernel.writes()[-1][0] == "-d"
    assert [m.name for m in kernel.backend.forced] == ["10.0.0.1:80"]
    assert any("expire_nodest_conn=0" in w and "dropped" in w for w in result["warnings"])


def test_force_on_drained_is_refused_before_any_io(kernel, tmp_path):
    with pytest.raises(InvalidInputError) as info:
        run(kernel, tmp_path, request("drained", "10.0.0.1", on_timeout="force"))
    assert "state=absent" in info.value.msg
    assert kernel.calls == []


@pytest.mark.parametrize("weight, fragment", [(70000, "0-65535"), (-1, "0-65535"), (0, "use state=drained")])
def test_weight_out_of_range_is_refused_before_any_io(kernel, tmp_path, weight, fragment):
    with pytest.raises(InvalidInputError) as info:
        run(kernel, tmp_path, request("present", "10.0.0.1", weight=weight))
    assert fragment in info.value.msg
    assert kernel.calls == []


def test_unknown_service_and_unknown_address(kernel, tmp_path):
    with pytest.raises(NotFoundError) as info:
        run(kernel, tmp_path, request("drained", "10.0.0.1", services=["tcp:10.0.0.200:80"]))
    assert "virtual service tcp:10.0.0.200:80: not defined" in info.value.msg
    with pytest.raises(NotFoundError):
        run(kernel, tmp_path, request("absent", "10.0.0.1", services=["tcp:10.0.0.200:80"]))
    with pytest.raises(NotFoundError) as info:
        run(kernel, tmp_path, request("drained", "10.0.0.77"))
    assert "real server 10.0.0.77: not found in any virtual service" in info.value.msg
    assert kernel.writes() == []


def test_capacity_guard_counts_weight_only(kernel, tmp_path):
    dest(kernel, "tcp:10.0.0.100:80", "10.0.0.2:80")["weight"] = 0
    with pytest.raises(GuardRefusedError) as info:
        run(kernel, tmp_path, request("drained", "10.0.0.1"))
    assert "min_active=1" in info.value.msg and "tcp:10.0.0.100:80" in info.value.msg
    assert kernel.writes() == []
    result = run(kernel, tmp_path, request("drained", "10.0.0.1", min_active=0))
    assert result["changed"] is True


def test_write_failure_maps_and_reports_progress(kernel, tmp_path):
    kernel.fail["-e"] = (255, "No such destination\n")
    with pytest.raises(NotFoundError) as info:
        run(kernel, tmp_path, request("drained", "10.0.0.1"))
    assert "rerun the task" in info.value.msg
    assert info.value.result["changed"] is False


def test_permission_denied_on_read(kernel, tmp_path):
    kernel.fail["-L"] = (2, "Can't initialize ipvs: Permission denied (you must be root)\n"
                            "Are you sure that IP Virtual Server is built in the kernel or as module?\n")
    with pytest.raises(PermissionDeniedError):
        run(kernel, tmp_path, request("drained", "10.0.0.1"))


def test_old_ipvsadm_without_tun_info_falls_back(kernel, tmp_path):
    calls = []

    def runner(argv, timeout, stdin=None):
        calls.append(stdin)
        if "--tun-info" in stdin:
            # popt stops ipvsadm at the first line with an unknown option.
            return 2, "", "ipvsadm: --tun-info: unknown option\n"
        return kernel(argv, timeout, stdin)
    backend = ipvs.IPVSBackend(ipvsadm=ipvs.Ipvsadm(runner=runner, binary="ipvsadm"),
                               memory=ipvs.WeightMemory(str(tmp_path / "w.json")), configs=(),
                               proc_root=str(tmp_path))
    members = backend.read(None)
    assert calls == ["-L -n --exact --tun-info\n-L -n --exact --thresholds\n",
                     "-L -n --exact\n-L -n --exact --thresholds\n"]
    backend.poll(None)
    assert calls[-1] == "-L -n --exact\n"          # remembered: no second try
    udp = [m for m in members if m.name == "10.0.0.1:53"][0]
    assert udp.details["forwarding"] == "tunnel" and udp.details["tunnel_type"] == "ipip"


def test_sh_without_fallback_and_persistence_warnings(tmp_path):
    kernel = FakeKernel()
    sh = kernel.service("tcp:10.0.0.100:80", sched="sh")
    kernel.dest(sh, "10.0.0.1:80", weight=1)
    kernel.dest(sh, "10.0.0.2:80", weight=1)
    mh = kernel.service("tcp:10.0.0.101:80", sched="mh", flags="(mh-fallback)")
    kernel.dest(mh, "10.0.0.1:80", weight=1)
    kernel.dest(mh, "10.0.0.2:80", weight=1)
    sticky = kernel.service("tcp:10.0.0.102:80", sched="rr", flags="persistent 300")
    kernel.dest(sticky, "10.0.0.1:80", weight=1)
    kernel.dest(sticky, "10.0.0.2:80", weight=1)
    proc = tmp_path / "proc" / "sys" / "net" / "ipv4" / "vs"
    proc.mkdir(parents=True)
    (proc / "expire_quiescent_template").write_text("0\n")
    result = run(kernel, tmp_path, request("drained", "10.0.0.1"), check_mode=True)
    warnings = result["warnings"]
    assert any("tcp:10.0.0.100:80 uses the sh scheduler without sh-fallback" in w for w in warnings)
    assert not any("tcp:10.0.0.101:80" in w for w in warnings)
    assert ("virtual service tcp:10.0.0.102:80 is persistent and net.ipv4.vs.expire_quiescent_template=0: clients "
            "with a persistence template keep reaching 10.0.0.1:80 while its weight is 0; set "
            "expire_quiescent_template: true (or the sysctl to 1) to move them, or count_persistent: true to wait "
            "until their templates expire") in warnings
    (proc / "expire_quiescent_template").write_text("1\n")
    result = run(kernel, tmp_path, request("drained", "10.0.0.1"), check_mode=True)
    assert not any("persistent" in w for w in result["warnings"])


@pytest.fixture
def sticky(tmp_path):
    """Two persistent services and a plain one, all with 10.0.0.1; the sysctl at 0."""
    kernel = FakeKernel()
    for spec, flags in (("tcp:10.0.0.102:80", "persistent 300"), ("fwmark:9", "persistent 60"),
                        ("tcp:10.0.0.103:80", "")):
        name = kernel.service(spec, sched="rr", flags=flags)
        kernel.dest(name, "10.0.0.1:%s" % ("0" if spec.startswith("fwmark") else "80"), weight=2)
        kernel.dest(name, "10.0.0.2:%s" % ("0" if spec.startswith("fwmark") else "80"), weight=1)
    proc = tmp_path / "proc" / "sys" / "net" / "ipv4" / "vs"
    proc.mkdir(parents=True)
    (proc / "expire_quiescent_template").write_text("0\n")
    kernel.sysctl = proc / "expire_quiescent_template"
    return kernel


def test_persistence_is_one_warning_for_every_service_and_a_rerun(sticky, tmp_path):
    for _run in range(2):
        result = run(sticky, tmp_path, request("drained", "10.0.0.1"))
        assert not result.get("failed")
        pinned = [w for w in result["warnings"] if "persistent" in w]
        assert pinned == ["virtual services fwmark:9, tcp:10.0.0.102:80 are persistent and "
                          "net.ipv4.vs.expire_quiescent_template=0: clients with a persistence template keep reaching "
                          "10.0.0.1:0, 10.0.0.1:80 while their weight is 0; set expire_quiescent_template: true (or "
                          "the sysctl to 1) to move them, or count_persistent: true to wait until their templates "
                          "expire"]
    assert sticky.sysctl.read_text() == "0\n"       # never changed without the option


def test_expire_quiescent_template_is_set_before_the_first_drain_write(sticky, tmp_path):
    seen = []
    original = sticky.write

    def write(args):
        seen.append(sticky.sysctl.read_text())
        return original(args)
    sticky.write = write
    planned = run(sticky, tmp_path, request("drained", "10.0.0.1"), check_mode=True, expire_quiescent_template=True)
    assert planned["changed"] and sticky.sysctl.read_text() == "0\n"       # check mode writes nothing
    assert not any("expire_quiescent_template" in w for w in planned["warnings"])
    result = run(sticky, tmp_path, request("drained", "10.0.0.1"), expire_quiescent_template=True)
    assert result["changed"] is True
    assert sticky.sysctl.read_text() == "1\n"
    assert seen and set(seen) == {"1\n"}            # before every weight-0 edit
    assert [w for w in result["warnings"] if "expire_quiescent_template" in w] == [
        "net.ipv4.vs.expire_quiescent_template: set to 1 (was 0) before draining in the persistent virtual services "
        "fwmark:9, tcp:10.0.0.102:80, so clients with a persistence template go to other real servers; it applies to "
        "the whole director and stays 1"]
    again = run(sticky, tmp_path, request("present", "10.0.0.1"), expire_quiescent_template=True)
    assert again["changed"] and sticky.sysctl.read_text() == "1\n"        # present leaves it alone
    last = run(sticky, tmp_path, request("drained", "10.0.0.1"), expire_quiescent_template=True)
    assert not any("expire_quiescent_template" in w for w in last["warnings"])     # already 1: nothing to say


def test_expire_quiescent_template_only_for_persistent_services(sticky, tmp_path):
    result = run(sticky, tmp_path, request("drained", "10.0.0.1", services=["tcp:10.0.0.103:80"]),
                 expire_quiescent_template=True)
    assert result["changed"] and sticky.sysctl.read_text() == "0\n"


def test_expire_quiescent_template_that_cannot_be_set_changes_nothing(sticky, tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(ipvs.os, "access", lambda path, mode: False if path == str(sticky.sysctl)
                        else real_access(path, mode))        # a read-only /proc/sys (a container)
    with pytest.raises(PermissionDeniedError) as info:
        run(sticky, tmp_path, request("drained", "10.0.0.1"), expire_quiescent_template=True)
    assert info.value.msg.startswith("sysctl net.ipv4.vs.expire_quiescent_template: cannot be set to 1 (")
    assert sticky.writes() == []
    assert not os.path.exists(str(tmp_path / "weights.json"))


def test_kept_options_of_an_existing_destination_are_reported(kernel, tmp_path):
    req = request("present", "10.0.0.2", services=["tcp:10.0.0.100:80"], forwarding="route", upper_threshold=5)
    result = run(kernel, tmp_path, req)
    assert result["changed"] is False
    assert any("forwarding=route (is masq)" in w and "upper_threshold=5 (is 0)" in w
               for w in result["warnings"])
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.2:80")["fwd"] == "Masq"


def make_proc(root, processes):
    for pid, (comm, argv) in processes.items():
        directory = root / str(pid)
        directory.mkdir(parents=True)
        (directory / "comm").write_text(comm + "\n")
        (directory / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def test_keepalived_and_ldirectord_are_detected(kernel, tmp_path):
    make_proc(tmp_path / "proc", {
        1: ("init", ["/sbin/init"]),
        812: ("keepalived", ["/usr/sbin/keepalived", "--dont-fork"]),
        813: ("keepalived", ["/usr/sbin/keepalived", "--dont-fork"]),
        900: ("perl", ["/usr/bin/perl", "/usr/sbin/ldirectord", "start"]),
        901: ("sleep", ["sleep", "10"]),
    })
    result = run(kernel, tmp_path, request("drained", "10.0.0.1"), check_mode=True)
    assert any(w.startswith("keepalived is running (pid 812)") for w in result["warnings"])
    assert any(w.startswith("ldirectord is running (pid 900)") for w in result["warnings"])


def test_manager_configs_are_detected(kernel, tmp_path):
    conf = tmp_path / "keepalived.conf"
    conf.write_text("global_defs {\n}\n# virtual_server commented\nvirtual_server 10.0.0.100 80 {\n}\n")
    quiet = tmp_path / "ldirectord.cf"
    quiet.write_text("# virtual=10.0.0.100:80\nchecktimeout=3\n")
    configs = (("keepalived", str(conf), "virtual_server"), ("ldirectord", str(quiet), "virtual"),
               ("ldirectord", str(tmp_path / "missing.cf"), "virtual"))
    result = run(kernel, tmp_path, request("drained", "10.0.0.1"), check_mode=True, configs=configs)
    managed = [w for w in result["warnings"] if "defines" in w]
    assert len(managed) == 1 and str(conf) in managed[0]


def test_no_manager_no_warning(kernel, tmp_path):
    make_proc(tmp_path / "proc", {1: ("init", ["/sbin/init"])})
    result = run(kernel, tmp_path, request("drained", "10.0.0.1"), check_mode=True)
    assert result["warnings"] == []


def test_warnings_survive_a_failure(kernel, tmp_path):
    make_proc(tmp_path / "proc", {5: ("keepalived", ["keepalived"])})
    with pytest.raises(NotFoundError) as info:
        run(kernel, tmp_path, request("drained", "10.0.0.77"))
    assert any("keepalived is running" in w for w in info.value.result["warnings"])


def test_corrupt_memory_warning_reaches_the_result(kernel, tmp_path):
    (tmp_path / "weights.json").write_text("{oops")
    dest(kernel, "tcp:10.0.0.100:80", "10.0.0.2:80")["weight"] = 0
    result = run(kernel, tmp_path, request("present", "10.0.0.2"))
    assert any("not a gentle.lb weight memory" in w for w in result["warnings"])
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.2:80")["weight"] == 1


def test_memory_failure_leaves_the_table_untouched(kernel, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    backend = ipvs.IPVSBackend(ipvsadm=ipvs.Ipvsadm(runner=kernel, binary="ipvsadm"),
                               memory=ipvs.WeightMemory(str(blocker / "w.json")), configs=(),
                               proc_root=str(tmp_path))
    with pytest.raises(CommandError) as info:
        core.run(backend, request("drained", "10.0.0.1"))
    assert "state_file" in info.value.msg
    assert kernel.writes() == []
    assert dest(kernel, "tcp:10.0.0.100:80", "10.0.0.1:80")["weight"] == 5


def test_poll_is_cheaper_than_read(kernel, tmp_path, clock):
    kernel.hold("tcp:10.0.0.100:80", "10.0.0.1:80", 1, until=1.0)
    req = request("drained", "10.0.0.1", services=["tcp:10.0.0.100:80"])
    result = run(kernel, tmp_path, req, clock=clock)
    listings = [c for c in kernel.calls if c[0] == "-L"]
    # only in the full reads: the first one, and the capacity check after the write
    assert sum(1 for c in listings if "--thresholds" in c) == 2
    assert result["members"][0]["upper_threshold"] == 100            # carried over while polling
    # Named services are listed alone, never the whole table.
    assert all(c[-2:] == ["-t", "10.0.0.100:80"] for c in listings)


def test_one_ipvsadm_process_per_read_and_per_poll(kernel, tmp_path, clock):
    """ipvsadm -R runs every listing of a read in one process: a drain in two
    services is one process to read, one per edit, one to re-check the floor
    and one per poll."""
    result = run(kernel, tmp_path, request("drained", "10.0.0.1"), clock=clock)
    assert result["changed"] is True and len(result["members"]) == 2
    assert kernel.processes == 1 + 2 + 1 + 1
    assert [c[:4] for c in kernel.calls if c[0] == "-L"] == [
        ["-L", "-n", "--exact", "--tun-info"], ["-L", "-n", "--exact", "--thresholds"],      # read
        ["-L", "-n", "--exact", "--tun-info"], ["-L", "-n", "--exact", "--thresholds"],      # floor
        ["-L", "-n", "--exact", "--tun-info"], ["-L", "-n", "--exact", "--tun-info"]]        # poll, per service


def test_a_listing_that_went_missing_is_an_error_not_an_empty_table(kernel, tmp_path):
    """ipvsadm -R returns its last line's exit status only: a listing that
    failed in the middle must not read as an empty table."""
    def first_listing_lost(argv, timeout, stdin=None):
        rc, out, err = kernel(argv, timeout, stdin)
        return 0, "".join(ipvs.split_listings(out)[1:]), "Memory allocation problem\n"
    backend = ipvs.IPVSBackend(ipvsadm=ipvs.Ipvsadm(runner=first_listing_lost, binary="ipvsadm"),
                               memory=ipvs.WeightMemory(str(tmp_path / "w.json")), configs=(),
                               proc_root=str(tmp_path))
    with pytest.raises(CommandError) as info:
        backend.read(None)
    assert info.value.msg == (
        "ipvsadm -R (-L -n --exact --tun-info; -L -n --exact --thresholds): listed 1 of the 2 tables asked for "
        "(Memory allocation problem); nothing was changed, rerun the task")


def test_a_named_service_that_does_not_exist_is_named(kernel, tmp_path):
    backend = backend_for(kernel, tmp_path)
    with pytest.raises(NotFoundError) as info:
        backend.read(["tcp:10.0.0.100:80", "tcp:10.0.0.200:80"])
    assert info.value.msg.startswith("virtual service tcp:10.0.0.200:80: not defined on this director")
    assert kernel.processes == 1


@pytest.mark.parametrize("word", ["10.0.0.1:80\n-C", "-t 10.0.0.1:80", ""])
def test_nothing_but_plain_words_reaches_ipvsadm_r(word):
    class Key(object):
        def args(self):
            return ["-t", word]
    with pytest.raises(InvalidInputError):
        ipvs.listing_args("tun_info", Key())


def test_describe_returns_services(kernel, tmp_path):
    backend = backend_for(kernel, tmp_path)
    result = core.describe(backend, ["udp:10.0.0.100:53"])
    assert [s["name"] for s in result["services"]] == ["udp:10.0.0.100:53"]
    assert result["services"][0]["members"] == 2
    assert len(result["members"]) == 2
    everything = core.describe(backend_for(kernel, tmp_path))
    assert len(everything["services"]) == 3 and len(everything["members"]) == 6
    only = core.describe(backend_for(kernel, tmp_path), None, ipvs.selectors(None, 53))
    assert [m["name"] for m in only["members"]] == ["10.0.0.1:53", "10.0.0.2:53"]


def test_all_weights_are_remembered_in_one_write_before_the_first_edit(kernel, tmp_path, monkeypatch):
    writes = []
    original = ipvs.WeightMemory._write

    def counting(self, directory, data):
        writes.append((dict(data), len(kernel.writes())))
        return original(self, directory, data)
    monkeypatch.setattr(ipvs.WeightMemory, "_write", counting)
    run(kernel, tmp_path, request("drained", "10.0.0.1"))
    assert len(writes) == 1
    assert writes[0][1] == 0                                   # before any ipvsadm -e
    assert sorted(writes[0][0]) == ["tcp:10.0.0.100:80 10.0.0.1:80", "udp:10.0.0.100:53 10.0.0.1:53"]


def test_unreadable_options_are_refused_before_anything_is_written(kernel, tmp_path):
    def no_thresholds(argv, timeout, stdin=None):
        """The thresholds listing comes back without its destinations."""
        rc, out, err = kernel(argv, timeout, stdin)
        blocks = ipvs.split_listings(out)
        kept = [b if "Uthreshold" not in b else "".join(
            line + "\n" for line in b.splitlines() if not line.startswith("  -> ") or "RemoteAddress" in line)
            for b in blocks]
        return rc, "".join(kept), err
    backend = ipvs.IPVSBackend(ipvsadm=ipvs.Ipvsadm(runner=no_thresholds, binary="ipvsadm"),
                               memory=ipvs.WeightMemory(str(tmp_path / "w.json")), configs=(),
                               proc_root=str(tmp_path))
    for check_mode in (True, False):
        with pytest.raises(CommandError) as info:
            core.run(backend, request("drained", "10.0.0.1"), check_mode=check_mode)
        assert "could not be read; nothing was changed" in info.value.msg
    assert kernel.writes() == []
    assert not os.path.exists(str(tmp_path / "w.json"))


def test_spawn_runner_runs_an_argument_list_in_the_c_locale(tmp_path):
    script = tmp_path / "fake-ipvsadm"
    script.write_text("#!/bin/sh\necho \"$LC_ALL $*\"\necho oops >&2\nexit 3\n")
    script.chmod(0o755)
    rc, out, err = ipvs.spawn_runner([str(script), "-L", "-n; true"])
    assert (rc, out, err) == (3, "C -L -n; true\n", "oops\n")


def test_spawn_runner_kills_a_run_past_its_deadline(tmp_path):
    script = tmp_path / "stuck-ipvsadm"
    pid_file = tmp_path / "pid"
    script.write_text("#!/bin/sh\necho $$ > %s\nexec sleep 30\n" % pid_file)
    script.chmod(0o755)
    driver = ipvs.Ipvsadm(ipvs.spawn_runner, binary=str(script), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(UnreachableError) as info:
        driver.listing("tun_info")
    assert time.monotonic() - started < 5
    assert info.value.msg == ("ipvsadm -R (-L -n --exact --tun-info): no answer within timeout=0.3s, killed; the "
                              "director is overloaded or IPVS is stuck (see dmesg); rerun the task, or raise timeout")
    pid = int(pid_file.read_text())
    with pytest.raises(OSError):        # gone, and reaped
        os.kill(pid, 0)


def test_a_write_past_its_deadline_says_its_effect_is_unknown():
    def stuck(argv, timeout, stdin=None):
        raise subprocess.TimeoutExpired(argv, timeout)
    driver = ipvs.Ipvsadm(stuck, binary="/usr/sbin/ipvsadm", timeout=2)
    key = ipvs.parse_service_spec("tcp:10.0.0.100:80")
    with pytest.raises(UnreachableError) as info:
        driver.edit(key, "10.0.0.1:80", dict(forwarding="masq"), 0)
    assert info.value.msg == ("ipvsadm -e -t 10.0.0.100:80 -r 10.0.0.1:80 -m -w 0 -x 0 -y 0: no answer within "
                              "timeout=2s, killed, so whether it took effect is unknown; check with ipvsadm -Ln, then "
                              "rerun the task, or raise timeout")


@pytest.mark.parametrize("timeout", [0, -1, "30", True, None, float("nan")])
def test_timeout_must_be_a_positive_number(timeout):
    with pytest.raises(InvalidInputError) as info:
        ipvs.Ipvsadm(ipvs.spawn_runner, timeout=timeout)
    assert info.value.msg.startswith("timeout ")


def test_no_writable_temporary_directory_is_a_warning_not_a_crash(kernel, tmp_path, monkeypatch):
    """As an unprivileged user on a director whose /tmp it cannot write, the
    lock cannot be kept: the run goes on without it (and fails on ipvsadm's
    own permission error, in real life), never with a Python traceback."""
    def no_tmp():
        raise FileNotFoundError(2, "No usable temporary directory found in ['/tmp', '/var/tmp', '/usr/tmp', '/']")
    monkeypatch.delenv(core.LOCK_DIR_ENV, raising=False)
    monkeypatch.setattr(core.tempfile, "gettempdir", no_tmp)
    result = run(kernel, tmp_path, request("drained", "10.0.0.1"))
    assert result["changed"] is True
    assert any(w.startswith("lock for ipvs netns:") and "no directory to keep it in" in w and
               "set GENTLE_LB_LOCK_DIR" in w for w in result["warnings"]), result["warnings"]


def test_planning_does_no_io(kernel, tmp_path):
    """target_weight, new_member and check_plan are pure: everything they use
    was read by read() (the table and the remembered weights)."""
    backend = backend_for(kernel, tmp_path)
    backend.memory.remember_many({"tcp:10.0.0.100:80 10.0.0.2:80": 7})
    kernel.dest("tcp:10.0.0.100:80", "10.0.0.2:80", fwd="Masq", weight=0)
    members = backend.read(None)
    processes = kernel.processes

    def no_more_io(*args, **kwargs):
        raise AssertionError("I/O while planning")
    backend.ipvsadm.runner = no_more_io
    backend.memory._read_file = no_more_io
    restore = core.plan(backend, members, request("present", "10.0.0.2", services=["tcp:10.0.0.100:80",
                                                                                   "udp:10.0.0.100:53"]))
    assert [(c.member.container, c.weight, c.add) for c in restore.changes] == [("tcp:10.0.0.100:80", 7, False)]
    added = core.plan(backend, members, request("present", "10.0.0.9", services=["tcp:10.0.0.100:80"]))
    assert [(c.member.name, c.weight, c.add) for c in added.changes] == [("10.0.0.9:80", 1, True)]
    drain = core.plan(backend, members, request("drained", "10.0.0.1", min_active=0))
    assert len(drain.changes) == 2
    assert kernel.processes == processes
