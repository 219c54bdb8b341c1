"""Names as iControl REST spells them in URLs, bodies and messages.

A BIG-IP object is identified by its full path, ``/Partition[/Folder]/name``.
URLs carry it with ``~`` for ``/`` (``~Common~web``) and must percent-encode
the route-domain ``%`` as ``%25``; bodies carry names raw. Pool members are
``<node>:<port>``, except IPv6 nodes, which use ``.`` before the port because
the address already contains colons (``2001:db8::10.443``).
"""
import ipaddress
from urllib.parse import unquote

DEFAULT_PARTITION = "Common"


def url_segment_to_fullpath(segment, default_partition=DEFAULT_PARTITION):
    """'~Common~web' -> '/Common/web'; 'web' -> '/Common/web'.

    The segment is percent-decoded exactly once, so ``%252`` in a URL becomes
    the route domain ``%2`` of the name, as on a device.
    """
    name = unquote(segment)
    if name.startswith("~"):
        return name.replace("~", "/")
    return "/%s/%s" % (default_partition, name)


def fullpath_to_url_segment(fullpath):
    """'/Common/10.0.0.3%2:80' -> '~Common~10.0.0.3%252:80' (how selfLinks spell it)."""
    return fullpath.replace("/", "~").replace("%", "%25")


def split_fullpath(fullpath):
    """'/Common/app/web' -> ('Common', 'app', 'web'); no folder gives None."""
    parts = fullpath.strip("/").split("/")
    if len(parts) == 1:
        return DEFAULT_PARTITION, None, parts[0]
    sub = "/".join(parts[1:-1]) or None
    return parts[0], sub, parts[-1]


def join_fullpath(partition, name, sub_path=None):
    if name.startswith("/"):
        return name
    if sub_path:
        return "/%s/%s/%s" % (partition, sub_path, name)
    return "/%s/%s" % (partition, name)


def is_ipv6_name(node_name):
    # An IPv6 address (with or without %rd) always holds two or more colons;
    # node names and IPv4 addresses hold none.
    return node_name.count(":") >= 2


def split_member_name(name):
    """'10.0.0.1:80' -> ('10.0.0.1', 80); '2001:db8::10.443' -> ('2001:db8::10', 443).

    Raises ValueError when there is no usable port.
    """
    if name.count(":") > 1:
        node, _, port = name.rpartition(".")
    else:
        node, _, port = name.rpartition(":")
    if not node or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("invalid pool member name %r" % name)
    return node, int(port)


def join_member_name(node_name, port):
    sep = "." if is_ipv6_name(node_name) else ":"
    return "%s%s%d" % (node_name, sep, port)


def split_route_domain(address):
    """'10.0.0.3%2' -> ('10.0.0.3', 2); '10.0.0.3' -> ('10.0.0.3', None)."""
    ip, sep, rd = address.partition("%")
    if sep and rd.isdigit():
        return ip, int(rd)
    return address, None


def is_ip_address(text):
    """True for an IPv4/IPv6 address, with or without a %route-domain suffix."""
    ip, _ = split_route_domain(text)
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True


def with_route_domain(address, default_rd):
    """Apply a partition's default route domain to an address written without one."""
    if not default_rd or "%" in address or address in ("any", "any6"):
        return address
    return "%s%%%d" % (address, default_rd)
