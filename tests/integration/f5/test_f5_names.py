# -*- coding: utf-8 -*-
"""Names on the wire: partitions, folders, route domains (``%2`` raw in bodies,
``%25`` in URLs) and IPv6 members (``.`` before the port)."""
import pytest

import helpers
from conftest import DISABLED, ENABLED, conn, info, run, stored, writes


def tm_paths(f5, method):
    return [e["path"] for e in f5.requests()["entries"] if e["method"] == method and e["path"].startswith("/mgmt/tm/")]


def test_route_domain_member_by_address(f5):
    f5.reset_requests()
    result = run(f5, partition="DMZ", pool="dmzweb", address="10.0.0.3%2", port=80, state="drained")
    assert not result.failed, result
    entry = result["members"][0]
    assert (entry["container"], entry["name"], entry["address"]) == ("/DMZ/dmzweb", "10.0.0.3%2:80", "10.0.0.3%2")
    assert tm_paths(f5, "PATCH") == ["/mgmt/tm/ltm/pool/~DMZ~dmzweb/members/~DMZ~10.0.0.3%252:80"]
    assert stored(f5, "/DMZ/dmzweb", "10.0.0.3%2:80") == DISABLED
    assert run(f5, partition="DMZ", pool="dmzweb", address="10.0.0.3%2", port=80, state="drained")["changed"] is False


def test_address_without_route_domain_matches_the_partition_default(f5):
    result = run(f5, partition="DMZ", pool="dmzweb", address="10.0.0.4", port=80, state="drained")
    assert not result.failed and [m["name"] for m in result["members"]] == ["10.0.0.4%2:80"]
    wrong = run(f5, partition="DMZ", pool="dmzweb", address="10.0.0.4%3", port=80, state="drained")
    assert wrong.failed and "not found in pool /DMZ/dmzweb" in wrong["msg"]


def test_route_domain_member_by_name_and_every_pool_of_the_partition(f5):
    result = run(f5, partition="DMZ", name="10.0.0.3%2:80", state="drained")
    assert not result.failed and [m["container"] for m in result["members"]] == ["/DMZ/dmzweb"]


def test_new_route_domain_member_is_sent_raw_in_the_body(f5):
    f5.reset_requests()
    result = run(f5, partition="DMZ", pool="dmzweb", address="10.0.0.6%2", port=80, state="present")
    assert not result.failed and result["changed"] is True, result
    posts = [e for e in f5.requests()["entries"] if e["method"] == "POST" and e["path"].startswith("/mgmt/tm/")]
    assert [p["path"] for p in posts] == ["/mgmt/tm/ltm/pool/~DMZ~dmzweb/members"]
    assert posts[0]["body"] == {"name": "10.0.0.6%2:80", "partition": "DMZ", "address": "10.0.0.6%2",
                                "session": "user-enabled", "state": "user-up"}
    assert stored(f5, "/DMZ/dmzweb", "10.0.0.6%2:80") == ENABLED
    assert run(f5, partition="DMZ", pool="dmzweb", address="10.0.0.6%2", port=80, state="present")["changed"] is False


def test_ipv6_member(f5):
    f5.reset_requests()
    result = run(f5, pool="web6", address="2001:db8:0:0::10", port=443, state="drained")
    assert not result.failed, result
    assert [m["name"] for m in result["members"]] == ["2001:db8::10.443"]
    assert tm_paths(f5, "PATCH") == ["/mgmt/tm/ltm/pool/~Common~web6/members/~Common~2001:db8::10.443"]
    assert run(f5, pool="web6", name="2001:db8::10.443", state="drained")["changed"] is False
    assert run(f5, pool="web6", name="2001:db8::10", port=443, state="present")["changed"] is True
    assert stored(f5, "web6", "2001:db8::10.443") == ENABLED


def test_new_ipv6_member(f5):
    result = run(f5, pool="web6", address="2001:db8::12", port=8443, state="present")
    assert not result.failed and result["members"][0]["name"] == "2001:db8::12.8443"
    assert ("/Common/web6", "2001:db8::12.8443") in info(f5, pool="web6")


def test_folder_pool_by_full_path(f5):
    result = run(f5, pool="/Common/app/web", name="10.0.0.2:80", state="drained")
    assert not result.failed and [m["container"] for m in result["members"]] == ["/Common/app/web"]
    assert stored(f5, "/Common/app/web", "10.0.0.2:80") == DISABLED
    assert stored(f5, "/Common/web", "10.0.0.2:80") == ENABLED


def test_partition_scopes_the_pools(f5):
    # 10.0.0.3 is in /Common/web and (route domain 2) in /DMZ/dmzweb: the partition decides.
    result = run(f5, address="10.0.0.3", port=80, state="drained", partition="DMZ")
    assert [m["container"] for m in result["members"]] == ["/DMZ/dmzweb"]
    assert stored(f5, "web", "10.0.0.3:80") == ENABLED


def test_unknown_partition_and_member_not_in_pool(f5):
    f5.reset_requests()
    result = run(f5, partition="Nope", name="10.0.0.1:80", state="drained")
    assert result.failed and result["msg"].startswith("partition Nope: not found on F5 127.0.0.1:")
    result = run(f5, partition="Nope", pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed and result["msg"].startswith("pool /Nope/web: not found")
    result = run(f5, pool="web", name="10.0.0.9:80", state="drained")
    assert result.failed
    assert result["msg"] == ("member 10.0.0.9:80: not found in pool /Common/web; check the name or address, or "
                             "name the pool it belongs to")
    assert writes(f5) == []


# Every name option of both modules is matched as a whole string: a trailing
# newline is refused before any request, with error_type, on one line (the unit
# tests cover spaces and the other characters).
NAME_OPTIONS = [
    ("f5_pool_member", dict(pool="web\n", name="10.0.0.1:80", state="drained")),
    ("f5_pool_member", dict(pool="web", partition="Common\n", name="10.0.0.1:80", state="drained")),
    ("f5_pool_member", dict(pool="web", name="10.0.0.1:80\n", state="drained")),
    ("f5_pool_member", dict(pool="web", name=["10.0.0.1:80", "10.0.0.2:80\n"], state="drained")),
    ("f5_pool_member", dict(pool="web", address="10.0.0.1\n", port=80, state="drained")),
    ("f5_pool_member_info", dict(pool="web\n")),
    ("f5_pool_member_info", dict(partition="Common\n")),
    ("f5_pool_member_info", dict(name="10.0.0.1:80\n")),
    ("f5_pool_member_info", dict(address="10.0.0.1\n")),
]


def _bad_option(args):
    for key, value in args.items():
        if any(str(x) != str(x).strip() for x in (value if isinstance(value, list) else [value])):
            return key
    return None


@pytest.mark.parametrize("module, args", NAME_OPTIONS,
                         ids=["%s-%s-%d" % (m, _bad_option(a), i) for i, (m, a) in enumerate(NAME_OPTIONS)])
def test_a_trailing_newline_is_refused_in_every_name_option(f5, module, args):
    f5.reset_requests()
    result = helpers.run_module(module, conn(f5, **args))
    assert result.failed and result["error_type"] == "InvalidInputError", result
    assert "\n" not in result["msg"] and ("not a valid" in result["msg"] or "not an IPv4" in result["msg"])
    assert f5.requests()["total"] == 0
