# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""F5 BIG-IP LTM pool members for gentle.lb: one backend over two transports.

``F5Backend`` is the core's backend (see member.py).  It decides what to read
and write; a *transport* says it on the wire.  Both transports offer the same
small interface (``Transport``): read pools with their members and stats, read
the stats again, confirm one member's configuration, set an admin state, add
and remove a member, describe the device's HA setup, run a config sync.

* ``RestTransport``: iControl REST through ``RestClient`` (one
  ``requests.Session``, token login with provider ``tmos``, the token kept in a
  ``TokenCache`` between runs, basic authentication as fallback, reads retried
  on 5xx and dropped connections, one deadline per HTTP exchange).
* ``SoapTransport``: iControl SOAP through ``bigsuds`` (``LocalLB.Pool``).

What a device *reads back* is monitor-derived: ``user-up`` reads ``up``,
``down`` or ``unchecked``, ``user-enabled`` reads ``monitor-enabled``.  Reads
are mapped (``admin_state``), never compared literally.  The member stats carry
the admin state too (``sessionStatus``, ``status.enabledState``,
``status.statusReason``: ``status_admin_state``), so the checks that must see
somebody else's change -- the capacity floor after a write, every look while
waiting -- read stats only, one request per pool, and confirm a change they
see against the member's configuration before reporting it.

Requests, REST, with a cached token, draining one member: the members
collection and its stats (the plan), the PATCH, the stats again (the floor
check, whose answer is also the wait's first look): four.

No Ansible here: this file runs where the module runs, Python 3.9+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import ssl
import stat
import tempfile
import threading
import time
import traceback
import weakref
from copy import copy as shallow_copy

from ansible_collections.gentle.lb.plugins.module_utils import member as core
from ansible_collections.gentle.lb.plugins.module_utils.member import (
    AuthRefusedError, Backend, CommandError, InvalidInputError, LBError, Member, MissingLibraryError,
    NotFoundError, PermissionDeniedError, Selector, UnreachableError, WaitTimeoutError)

try:
    from urllib.parse import quote, unquote, urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported, but keep the import test calm
    from urllib import quote, unquote  # type: ignore
    from urlparse import urlsplit  # type: ignore

REQUESTS_IMPORT_ERROR = None
try:
    import requests
except ImportError:
    requests = None
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

LOGIN_PATH = "/mgmt/shared/authn/login"
TOKEN_PATH = "/mgmt/shared/authz/tokens/"
POOL_PATH = "/mgmt/tm/ltm/pool"
NODE_PATH = "/mgmt/tm/ltm/node"
CM_PATH = "/mgmt/tm/cm"
DEVICE_PATH = "/mgmt/tm/cm/device"
DEVICE_GROUP_PATH = "/mgmt/tm/cm/device-group"
SYNC_STATUS_PATH = "/mgmt/tm/cm/sync-status"

BIGSUDS_INSTALL = "pip install --no-deps bigsuds suds-community six"
CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

DRAIN_MODES = ("disabled", "forced_offline")
ADMIN_STATES = ("enabled", "disabled", "forced_offline")

# Writable values of the two fields, per admin state (always sent as a pair).
WRITE_FIELDS = {
    "enabled": {"session": "user-enabled", "state": "user-up"},
    "disabled": {"session": "user-disabled", "state": "user-up"},
    "forced_offline": {"session": "user-disabled", "state": "user-down"},
}

# status.availabilityState -> the core's health (DESIGN: available/unknown are usable).
HEALTH = {"available": "up", "unknown": "unknown", "offline": "down", "unavailable": "down"}

# Fields read from the members collection (a smaller answer for big pools).
MEMBER_FIELDS = ("name,partition,fullPath,address,session,state,ratio,priorityGroup,"
                 "connectionLimit,ephemeral")

MAX_RATIO = 65535

# While waiting, a pool with at most this many targets is polled member by member.
PER_MEMBER_POLL = 2

# The floor check's stats answer serves as the wait's first look when the
# wait starts within this many seconds of it (it starts at once: the core
# polls right after the floor check).
REUSE_WINDOW = 0.25

# A cached token is reused only if it lives at least this much longer (a
# token that expires during a long wait is renewed on its 401).
TOKEN_REUSE_MARGIN = 60.0
TOKEN_DIR_ENV = "GENTLE_LB_F5_TOKEN_DIR"
# The verifier that ties a cached token to the password it was issued for.
VERIFIER_ROUNDS = 20000

# A config sync (config_sync: true) must reach "In Sync" within this long.
SYNC_TIMEOUT = 120.0
SYNC_POLL = 0.5


# --------------------------------------------------------------------------
# Names: partitions, folders, route domains, IPv6 members
# --------------------------------------------------------------------------

# BIG-IP object names: letters, digits and . _ - plus : (IPv6) and % (route domain).
# Matched on the whole string, so a trailing newline is refused like any other character.
_NAME = re.compile(r"[A-Za-z0-9_.:%-]+")
_PARTITION = re.compile(r"[A-Za-z0-9_.-]+")
_FOLDER = re.compile(r"[A-Za-z0-9_.-]+")


def check_partition(partition):
    if not partition or not _PARTITION.fullmatch(partition):
        raise InvalidInputError("partition %r: not a valid BIG-IP partition name (letters, digits, . _ -); "
                                "check partition" % (partition,))
    return partition


def check_name(what, name):
    if not name or not _NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidInputError("%s %r: not a valid BIG-IP object name (letters, digits, . _ - : %%); "
                                "check the spelling" % (what, name))
    return name


def pool_path(pool, partition="Common"):
    """'web' -> '/Common/web'; '/Common/app/web' and '~Common~app~web' are taken as full paths."""
    if pool is None or not str(pool).strip():
        raise InvalidInputError("pool %r: empty pool name; name the pool, or omit pool to act on every "
                                "pool of the partition" % (pool,))
    pool = str(pool)
    if pool.startswith("~"):
        pool = pool.replace("~", "/")
    if not pool.startswith("/"):
        check_partition(partition)
        pool = "/%s/%s" % (partition, pool)
    parts = pool.split("/")[1:]
    if len(parts) < 2 or not _PARTITION.fullmatch(parts[0]) or any(not _FOLDER.fullmatch(p) for p in parts[1:-1]):
        raise InvalidInputError("pool %r: not a valid pool path (/Partition/[Folder/]name); check pool" % (pool,))
    check_name("pool", parts[-1])
    return pool


def url_segment(full_path):
    """'/Common/10.0.0.3%2:80' -> '~Common~10.0.0.3%252:80' (the route domain's % is %25 in URLs)."""
    return quote(full_path.replace("/", "~"), safe="~:._-")


def pool_url(pool):
    return "%s/%s" % (POOL_PATH, url_segment(pool))


def member_url(pool, member_full_path):
    return "%s/members/%s" % (pool_url(pool), url_segment(member_full_path))


def split_route_domain(address):
    """'10.0.0.3%2' -> ('10.0.0.3', 2); '10.0.0.3' -> ('10.0.0.3', None)."""
    text = str(address)
    ip, sep, rd = text.partition("%")
    if sep and rd.isdigit():
        return ip, int(rd)
    return text, None


def parse_ip(text):
    """An ipaddress object for '10.0.0.1' or '2001:db8::10' (route domain stripped), or None."""
    ip = split_route_domain(text)[0]
    try:
        return ipaddress.ip_address(u"%s" % ip)
    except ValueError:
        return None


def is_ipv6_node(node_name):
    # IPv6 addresses (with or without %rd) always hold two or more colons;
    # IPv4 addresses and node names hold none.
    return node_name.count(":") >= 2


def join_member_name(node_name, port):
    """IPv6 members use '.' before the port: '2001:db8::10.443'."""
    return "%s%s%d" % (node_name, "." if is_ipv6_node(node_name) else ":", int(port))


def split_member_name(name):
    """'10.0.0.1:80' -> ('10.0.0.1', 80); '2001:db8::10.443' -> ('2001:db8::10', 443);
    '/Common/web1:80' -> ('/Common/web1', 80).  Raises ValueError without a port."""
    text = str(name)
    head = text.rsplit("/", 1)[-1]
    if head.count(":") > 1:
        node, dummy, port = text.rpartition(".")
    else:
        node, dummy, port = text.rpartition(":")
    if not node or not port.isdigit() or not 0 <= int(port) <= 65535 or node.endswith("/"):
        raise ValueError("%r is not <node>:<port>" % (name,))
    return node, int(port)


def same_address(wanted, actual):
    """Does the address the user gave match the one the device reports?

    IPv6 spellings are compared as addresses.  An address written without a
    route domain matches the same IP in any route domain (a partition's default
    route domain is read back as ``%N``); with ``%N`` it must match exactly.
    """
    if actual is None:
        return False
    w_ip, w_rd = split_route_domain(wanted)
    a_ip, a_rd = split_route_domain(actual)
    w_obj, a_obj = parse_ip(w_ip), parse_ip(a_ip)
    if w_obj is not None and a_obj is not None:
        same_ip = w_obj == a_obj
    else:
        same_ip = w_ip.lower() == a_ip.lower()
    if not same_ip:
        return False
    return w_rd is None or w_rd == (a_rd or 0)


def parse_member_spec(name=None, address=None, port=None):
    """The user's name/address/port -> (member name or None, node name or None, address, port).

    ``name`` is a member name (``web1:80``, ``10.0.0.1:80``, ``2001:db8::10.443``)
    or a node name (``web1``, ``10.0.0.1``, ``2001:db8::10``); with ``port`` it is
    always a node name.
    """
    if name is None and address is None:
        raise InvalidInputError("member: neither name nor address given; give name (member or node name) "
                                "or address (and port)")
    if port is not None:
        port = int(port)
        if not 0 <= port <= 65535:
            raise InvalidInputError("port %s: not between 0 and 65535; check port" % port)
    if address is not None:
        address = str(address)
        if parse_ip(address) is None:
            raise InvalidInputError("address %r: not an IPv4 or IPv6 address (optionally with %%<route domain>); "
                                    "give the member's IP address, or use name for a node name" % (address,))
        check_name("address", address)
    node = member_name = None
    if name is not None:
        name = str(name)
        if "/" in name:
            raise InvalidInputError("name %r: give the member or node name without a partition; use the "
                                    "partition option for the partition" % (name,))
        check_name("name", name)
        if parse_ip(name) is not None:
            node = name                     # a node named by its address, with or without %rd
        else:
            try:
                node, named_port = split_member_name(name)
            except ValueError:
                node, named_port = name, None
            if named_port is not None:
                if port is not None and port != named_port:
                    raise InvalidInputError("name %s and port %d: the name already says port %d; drop one"
                                            % (name, port, named_port))
                port = named_port
    if node is not None and port is not None:
        member_name = join_member_name(node, port)
        node = None if member_name else node
    return member_name, node, address, port


class MemberSelector(Selector):
    """Select F5 members by member name, node name, address and/or port."""

    def __init__(self, name=None, address=None, port=None, node=None):
        super(MemberSelector, self).__init__(name=name, address=address, port=port)
        self.node = node

    @classmethod
    def from_params(cls, name=None, address=None, port=None):
        member_name, node, address, port = parse_member_spec(name, address, port)
        return cls(name=member_name, address=address, port=port, node=node)

    @classmethod
    def many(cls, names=None, addresses=None, port=None):
        """One selector per member name / address (lists of the same length are paired)."""
        names = names if isinstance(names, list) else ([names] if names is not None else [])
        addresses = addresses if isinstance(addresses, list) else ([addresses] if addresses is not None else [])
        if names and addresses and len(names) != len(addresses):
            raise InvalidInputError("name and address: %d and %d values; give one of them, or both with the "
                                    "same number of values (each pair names one member)"
                                    % (len(names), len(addresses)))
        if names and addresses:
            pairs = list(zip(names, addresses))
        else:
            pairs = [(name, None) for name in names] + [(None, address) for address in addresses]
        return [cls.from_params(name, address, port) for name, address in pairs]

    @classmethod
    def filter(cls, name=None, address=None, port=None):
        """For the info module: any of the three, or None for no filter at all."""
        if name is None and address is None:
            if port is None:
                return None
            parse_member_spec(address="0.0.0.0", port=port)     # range check only
            return cls(port=int(port))
        return cls.from_params(name, address, port)

    @property
    def node_name(self):
        """The node name the user gave (from a member name too), or None."""
        if self.node is not None:
            return self.node
        if self.name is not None:
            return split_member_name(self.name)[0]
        return None

    def matches(self, member):
        if self.name is not None and member.name != self.name:
            return False
        if self.node is not None and split_member_name(member.name)[0] != self.node:
            return False
        if self.address is not None and not same_address(self.address, member.address):
            return False
        if self.port is not None and member.port != self.port:
            return False
        return True

    def describe(self):
        if self.name is not None:
            return self.name
        base = self.node if self.node is not None else self.address
        if self.port is not None:
            return join_member_name(base, self.port)
        return str(base)


# --------------------------------------------------------------------------
# Reads -> member records (monitor-derived values mapped, never compared literally)
# --------------------------------------------------------------------------

def admin_state(session, state):
    """The admin state behind a member's *configuration* read (session/state pair).

    Reads are monitor-derived: ``user-up`` reads back as ``up``/``down``/``unchecked``/
    ``checking`` (or ``fqdn-*``) and ``user-enabled`` as ``monitor-enabled`` when a
    monitor applies.  Only ``user-down`` and ``user-disabled`` are read back as written.
    """
    if state == "user-down":
        return "forced_offline"
    if session == "user-disabled":
        return "disabled"
    return "enabled"


def status_admin_state(stats):
    """The admin state the member *stats* show, or None when they cannot tell.

    Public captures of real devices (``show ltm pool members`` and the REST stats
    carry the same fields) show an enabled member as ``sessionStatus enabled`` /
    ``status.enabledState enabled``, a disabled one as ``user-disabled`` /
    ``disabled``, and a forced-offline one with the reason ``Forced down``.  Under a
    disabled node the member reads ``disabled-by-parent``, which hides its own
    state: None, so the caller keeps the configuration's answer.
    """
    stats = stats or {}
    enabled = stats.get("status.enabledState")
    session = stats.get("sessionStatus")
    if enabled == "disabled-by-parent" or session == "addr-disabled":
        return None
    reason = str(stats.get("status.statusReason") or "")
    if reason.startswith("Forced down") or stats.get("monitorStatus") in ("forced down", "user-down"):
        return "forced_offline"
    if enabled == "disabled" or session == "user-disabled":
        return "disabled"
    if enabled == "enabled" or session == "enabled":
        return "enabled"
    return None


def model_state(admin, drain_mode="disabled"):
    """Admin state -> the state model.  With ``drain_mode: forced_offline`` a member
    that is only disabled still has to change, so it reads ``disabled``."""
    if admin == "enabled":
        return "present"
    if admin == "disabled" and drain_mode == "forced_offline":
        return "disabled"
    return "drained"


def health_of(availability, read_state=None):
    if availability in HEALTH:
        return HEALTH[availability]
    # No stats for this member: fall back to the monitor view of the config.
    if read_state in ("up", "fqdn-up"):
        return "up"
    if read_state in ("down", "user-down", "fqdn-down"):
        return "down"
    return "unknown"


def _count(stats, key):
    value = stats.get(key)
    return None if value is None else int(value)


def _stat(values, key, default=None):
    entry = values.get(key)
    if not isinstance(entry, dict):
        return default
    if "value" in entry:
        return entry["value"]
    return entry.get("description", default)


def parse_stats(body):
    """A members /stats answer -> {member full path: {stat name: value}}.

    Keys of ``entries`` are URLs ending ``/members/~Common~10.0.0.3%252:80/stats``
    (12.x+: values under ``nestedStats.entries``; 11.6 single stats were flat).
    """
    out = {}
    entries = (body or {}).get("entries") or {}
    for key, entry in entries.items():
        nested = entry.get("nestedStats", entry) if isinstance(entry, dict) else {}
        values = nested.get("entries", nested) if isinstance(nested, dict) else {}
        flat = {}
        for name in values:
            flat[name] = _stat(values, name)
        full_path = _member_from_stats_key(key)
        if full_path is None and flat.get("nodeName") and flat.get("port") is not None:
            full_path = join_member_name(flat["nodeName"], flat["port"])
        if full_path is not None:
            out[full_path] = flat
    return out


def _member_from_stats_key(key):
    path = urlsplit(key).path if "://" in key else key
    if "/members/" not in path:
        return None
    segment = path.rsplit("/members/", 1)[1]
    if segment.endswith("/stats"):
        segment = segment[:-len("/stats")]
    if "/" in segment or not segment:
        return None
    return unquote(segment).replace("~", "/")


def item_from_stats(full_path, stats):
    """A members-collection item for a member known only from its stats (added
    by somebody else since the plan's read): name and address, no configuration."""
    partition = full_path.strip("/").split("/", 1)[0]
    name = full_path.rsplit("/", 1)[1]
    node_path, port = split_member_name(full_path)
    # node_path and port: what the SOAP transport names a member by
    return {"name": name, "partition": partition, "fullPath": full_path, "address": stats.get("addr"),
            "node_path": node_path, "port": port}


def member_record(pool, item, stats=None, drain_mode="disabled", admin=None):
    """One pool member (a members-collection item plus its stats) -> core Member.

    ``admin`` overrides the admin state read from ``item`` (a stats-only read
    passes what the stats show)."""
    stats = stats or {}
    name = item["name"]
    partition = item.get("partition") or "Common"
    full_path = item.get("fullPath") or "/%s/%s" % (partition, name)
    node, port = split_member_name(name)
    address = item.get("address")
    if address is None and parse_ip(node) is not None:
        address = node
    if admin is None:
        admin = admin_state(item.get("session"), item.get("state"))
    conns = int(stats.get("serverside.curConns") or 0)
    sessions = int(stats.get("curSessions") or 0)
    availability = stats.get("status.availabilityState")
    details = dict(
        full_path=full_path,
        partition=partition,
        node="/%s/%s" % (partition, node),
        admin_state=admin,
        f5_session=item.get("session"),
        f5_state=item.get("state"),
        availability=availability,
        enabled_status=stats.get("status.enabledState"),
        status_reason=stats.get("status.statusReason"),
        connections=conns,
        current_sessions=sessions,
        # Cumulative counters, for comparing two readings (the analysis gate);
        # None when the stats were not read.
        total_connections=_count(stats, "serverside.totConns"),
        total_requests=_count(stats, "totRequests"),
        max_connections=_count(stats, "serverside.maxConns"),
        bits_in=_count(stats, "serverside.bitsIn"),
        bits_out=_count(stats, "serverside.bitsOut"),
        priority_group=item.get("priorityGroup"),
        connection_limit=item.get("connectionLimit"),
    )
    ratio = item.get("ratio")
    return Member(pool, name, address, port, state=model_state(admin, drain_mode),
                  weight=int(ratio) if ratio is not None else None,
                  sessions=max(conns, sessions), health=health_of(availability, item.get("state")),
                  details=details)


def gone_record(pool, item):
    name = item["name"]
    node, port = split_member_name(name)
    return Member(pool, name, item.get("address"), port, state="absent", weight=None, sessions=0,
                  health="unknown", details=dict(full_path=item.get("fullPath"), admin_state=None))


def full_path_of(item):
    return item.get("fullPath") or "/%s/%s" % (item.get("partition") or "Common", item["name"])


def port_of(item):
    try:
        return split_member_name(item["name"])[1]
    except ValueError:
        return None


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------

def tls_hint(where):
    return ("%s: TLS certificate verification failed; set validate_certs: false (or F5_VALIDATE_CERTS=false) "
            "to skip the check, or keep it and point REQUESTS_CA_BUNDLE at a CA bundle that signed the "
            "device certificate" % where)


def one_line(text, limit=600):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


_DENIED = re.compile(r"does not have (\w+) access to object \(([\w ]+)\)")

# What a missing permission stops, and what to do instead, per (verb, object).
DENIED_HINTS = {
    ("create", "pool_member"): ("add members", "add the member beforehand, or use a user whose role may create "
                                               "pool members (Manager, Administrator)"),
    ("delete", "pool_member"): ("remove members", "use state: drained (the Operator role may drain), or a user "
                                                  "whose role may delete pool members (Manager, Administrator)"),
    ("modify", "pool_member"): ("change anything but the member's enabled/disabled state (ratio included)",
                                "drop weight, or use a user whose role may modify pool members (Manager, "
                                "Administrator)"),
    ("create", "device_group"): ("run a config sync", "set config_sync: false and sync the group as an "
                                                      "administrator, or use a user with the Administrator role"),
}


def denied_error(what, user, where, message):
    """A 400 ``01070822:3: Access Denied`` answer -> PermissionDeniedError naming the permission."""
    match = _DENIED.search(message)
    verb, kind = match.groups() if match else ("this", "object")
    stops, hint = DENIED_HINTS.get((verb, kind), ("do this", "use a user whose role has %s access to %s objects"
                                                  % (verb, kind)))
    return PermissionDeniedError(
        "%s: user %s lacks %s access to %s on %s, so it may not %s (%s); %s"
        % (what, user, verb, kind, where, stops, one_line(message, 200), hint))


def check_library(transport):
    """Raise MissingLibraryError when the transport's library cannot be imported here."""
    missing = missing_library(transport)
    if missing:
        library, trace, hint = missing
        raise MissingLibraryError("library %s: not installed where this module runs (%s); %s"
                                  % (library, _python_name(), hint), library, trace)


def _python_name():
    import sys
    return sys.executable or "python"


def missing_library(transport):
    """(library, traceback, install hint) for a transport whose library is missing, else None."""
    if transport == "soap":
        error = _bigsuds_import_error()
        if error:
            return ("bigsuds", error, "Install it with: %s (bigsuds declares suds-jurko, which does "
                    "not build on Python 3.11+)" % BIGSUDS_INSTALL)
        return None
    if requests is None:
        return ("requests", REQUESTS_IMPORT_ERROR, "Install it with: pip install requests")
    return None


# --------------------------------------------------------------------------
# The token cache: one login per device and user, not per task
# --------------------------------------------------------------------------

def default_token_dir():
    """``$GENTLE_LB_F5_TOKEN_DIR``, else ``$XDG_CACHE_HOME/gentle.lb/f5-tokens``,
    else ``~/.cache/gentle.lb/f5-tokens``; None when there is no home."""
    if os.environ.get(TOKEN_DIR_ENV):
        return os.environ[TOKEN_DIR_ENV]
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.path.expanduser("~")
        if not home or home == "~":
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "gentle.lb", "f5-tokens")


class TokenCache(object):
    """Login tokens kept between module runs, one file per device and user.

    A token is a bearer credential: whoever reads the file can act as the user
    until the token expires (the device's lifetime, 1200 s by default; this
    cache never extends it).  So: the directory is created 0700, every file
    0600, both must belong to the user running the module and grant nothing to
    group or others (else the cache is not used, with a warning), files are
    opened without following symlinks and replaced atomically.  The password
    is never written; a salted PBKDF2 verifier of it is, so a run with another
    (or a wrong) password never gets a token that was issued for this one --
    it logs in, and the device decides.
    """

    def __init__(self, directory=None, clock=time.time):
        self.directory = directory if directory is not None else default_token_dir()
        self.clock = clock
        self.warning = None

    # --- files ------------------------------------------------------------------

    def _key(self, server, port, user):
        digest = hashlib.sha256(("%s|%d|%s" % (server, int(port), user)).encode("utf-8")).hexdigest()
        return os.path.join(self.directory, "%s.json" % digest[:32])

    def _usable_dir(self, create):
        if not self.directory:
            return False
        try:
            if create and not os.path.lexists(self.directory):
                os.makedirs(self.directory, 0o700)
            info = os.lstat(self.directory)
        except OSError:
            return False
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            problem = "is a symlink" if stat.S_ISLNK(info.st_mode) else "is not a directory"
        elif info.st_uid != os.geteuid():
            problem = "belongs to uid %d, not to this user (uid %d)" % (info.st_uid, os.geteuid())
        elif info.st_mode & 0o077:
            problem = "has mode %o, which lets group or others in" % stat.S_IMODE(info.st_mode)
        else:
            return True
        self.warning = ("token cache %s: %s, so it is not used and every task logs in; make it a directory of this "
                        "user with mode 0700, or set token_cache: false" % (self.directory, problem))
        return False

    def _read(self, path):
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or info.st_mode & 0o077 or not stat.S_ISREG(info.st_mode):
                return None
            with os.fdopen(fd, "r") as handle:
                fd = None
                return json.load(handle)
        except (OSError, ValueError):
            return None
        finally:
            if fd is not None:
                os.close(fd)

    def _write(self, path, entry):
        handle, temp = tempfile.mkstemp(dir=self.directory, prefix=".token-")   # created 0600
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(entry, out)
            os.replace(temp, path)
        except OSError:
            try:
                os.unlink(temp)
            except OSError:
                pass

    @staticmethod
    def _verifier(password, salt):
        return hashlib.pbkdf2_hmac("sha256", (password or "").encode("utf-8"), bytes.fromhex(salt),
                                   VERIFIER_ROUNDS).hex()

    # --- what the client uses ---------------------------------------------------------

    def load(self, server, port, user, password):
        """The cached entry (token, expires, facts) for this device and user, if its
        password verifier matches and it lives long enough; else None."""
        if not self._usable_dir(create=False):
            return None
        entry = self._read(self._key(server, port, user))
        if not entry or entry.get("server") != server or entry.get("user") != user:
            return None
        if float(entry.get("expires") or 0) - self.clock() < TOKEN_REUSE_MARGIN:
            return None
        salt = entry.get("salt") or ""
        try:
            expected = self._verifier(password, salt)
        except ValueError:
            return None
        if not hmac.compare_digest(expected, str(entry.get("verifier") or "")):
            return None
        return entry

    def store(self, server, port, user, password, token, expires, facts=None):
        """Keep a token; True if it is now the cached one."""
        if not self._usable_dir(create=True):
            return False
        salt = os.urandom(16).hex()
        entry = dict(server=server, port=int(port), user=user, token=token, expires=float(expires), salt=salt,
                     verifier=self._verifier(password, salt), facts=facts)
        self._write(self._key(server, port, user), entry)
        return self.holds(server, port, user, token)

    def remember_facts(self, server, port, user, token, facts):
        """Add what is known about the device (standalone or not) to the token's entry."""
        path = self._key(server, port, user)
        entry = self._read(path) if self._usable_dir(create=False) else None
        if entry and entry.get("token") == token:
            entry["facts"] = facts
            self._write(path, entry)

    def holds(self, server, port, user, token):
        entry = self._read(self._key(server, port, user)) if self._usable_dir(create=False) else None
        return bool(entry) and entry.get("token") == token

    def forget(self, server, port, user, token=None):
        path = self._key(server, port, user)
        if token is not None and not self.holds(server, port, user, token):
            return
        try:
            os.unlink(path)
        except OSError:
            pass


# --------------------------------------------------------------------------
# iControl REST: one HTTP exchange, one deadline
# --------------------------------------------------------------------------

class _Watchdog(object):
    """Cuts this client's sockets when one HTTP exchange runs past its deadline.

    ``requests``' timeout applies to each socket read, so a device that answers
    a byte at a time would never be cut off.  Every connection the session opens
    is registered here; a timer started with each exchange shuts the sockets
    down when ``timeout`` seconds have passed, which ends the blocked read."""

    def __init__(self):
        self.sockets = weakref.WeakSet()
        self.fired = False
        self._lock = threading.Lock()

    def add(self, sock):
        if isinstance(sock, socket.socket):
            with self._lock:
                self.sockets.add(sock)

    def start(self, seconds):
        self.fired = False
        timer = threading.Timer(seconds, self._fire)
        timer.daemon = True
        timer.start()
        return timer

    def _fire(self):
        self.fired = True
        with self._lock:
            sockets = list(self.sockets)
        for sock in sockets:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass


def _watch_session(session, watchdog):
    """Mount adapters whose connections register their sockets with ``watchdog``."""
    try:
        from requests.adapters import HTTPAdapter
        from urllib3.connection import HTTPConnection, HTTPSConnection
        from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    except ImportError:   # pragma: no cover - requests always brings urllib3
        return

    class WatchedHTTPS(HTTPSConnection):
        def connect(self):
            HTTPSConnection.connect(self)
            watchdog.add(self.sock)

    class WatchedHTTP(HTTPConnection):
        def connect(self):
            HTTPConnection.connect(self)
            watchdog.add(self.sock)

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPS

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTP

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            HTTPAdapter.init_poolmanager(self, *args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}

    session.mount("https://", Adapter())
    session.mount("http://", Adapter())


class RestClient(object):
    """iControl REST over one requests.Session.  Raises the core's LBError subclasses.

    Tokens: from ``cache`` (a TokenCache) when it holds a live one for this device,
    user and password, else from a login, which is then cached.  A 401 leads to
    one new login (the cache entry is dropped) and one repeat of the request.
    ``close()`` deletes the token unless the cache keeps it."""

    RETRY_STATUS = (500, 502, 503, 504)

    def __init__(self, server, server_port=443, user=None, password=None, validate_certs=True,
                 timeout=30.0, session=None, sleep=time.sleep, retries=3, backoff=0.25, backoff_max=2.0,
                 scheme="https", cache=None):
        if requests is None and session is None:
            raise InvalidInputError("library requests: not installed on this host; %s"
                                    % missing_library("rest")[2])
        self.server = server
        self.port = int(server_port)
        host = "[%s]" % server if ":" in server and not server.startswith("[") else server
        self.base = "%s://%s:%d" % (scheme, host, self.port)
        self.where = "F5 %s:%d" % (server, self.port)
        self.user = user
        self.password = password
        self.verify = bool(validate_certs)
        self.timeout = float(timeout)
        self.watchdog = _Watchdog()
        if session is None:
            session = requests.Session()
            _watch_session(session, self.watchdog)
        self.session = session
        if not self.verify and requests is not None:
            # The user asked for no verification; urllib3 would warn on every request.
            try:
                requests.packages.urllib3.disable_warnings(requests.packages.urllib3.exceptions.InsecureRequestWarning)
            except AttributeError:
                pass
        self.sleep = sleep
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.backoff_max = float(backoff_max)
        self.cache = cache
        self.token = None
        self.token_from_cache = False
        self.cached_facts = None    # what the cache entry knew about the device
        self.auth_mode = None       # "token" or "basic"
        self.login_answer = None    # why token login was not used (basic fallback)
        self.sent = 0               # HTTP requests sent

    # --- connection life -------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def login(self, use_cache=True):
        if use_cache and self.cache is not None:
            entry = self.cache.load(self.server, self.port, self.user, self.password)
            if entry:
                self.token, self.token_from_cache = entry["token"], True
                self.cached_facts = entry.get("facts")
                self.auth_mode = "token"
                self.session.auth = None
                return
        body = {"username": self.user, "password": self.password, "loginProviderName": "tmos"}
        resp = self._send("POST", LOGIN_PATH, body=body, retry=True, auth=False)
        if resp.status_code == 200:
            try:
                token = resp.json()["token"]
                value = token.get("token") or token.get("uuid")   # 11.6 returned token.uuid
            except (ValueError, KeyError, TypeError, AttributeError):
                value = token = None
            if value:
                self.token, self.token_from_cache, self.cached_facts = value, False, None
                self.auth_mode = "token"
                self.session.auth = None
                if self.cache is not None:
                    self.cache.store(self.server, self.port, self.user, self.password, value, _expiry(token))
                return
        if resp.status_code == 401:
            raise AuthRefusedError("%s: user %s was refused at login (%s); check user and password "
                                   "(or F5_USER / F5_PASSWORD)" % (self.where, self.user, _device_message(resp)))
        # Token login not available (old version, REST framework answering
        # otherwise): basic authentication, which works for local users only.
        self.login_answer = "%d %s" % (resp.status_code, _device_message(resp))
        self.auth_mode = "basic"
        self.token = None
        self.session.auth = (self.user, self.password)

    def remember_facts(self, facts):
        """Keep what was learnt about the device with the cached token."""
        if self.cache is not None and self.token:
            self.cache.remember_facts(self.server, self.port, self.user, self.token, facts)

    def close(self):
        """Delete the token unless the cache keeps it (a device caps live tokens per
        user), close the session."""
        token, self.token = self.token, None
        try:
            kept = token and self.cache is not None and self.cache.holds(self.server, self.port, self.user, token)
            if token and not kept:
                try:
                    self.sent += 1
                    self.session.request("DELETE", self.base + TOKEN_PATH + token,
                                         headers={"X-F5-Auth-Token": token}, verify=self.verify,
                                         timeout=min(self.timeout, 10.0))
                except Exception:  # pylint: disable=broad-except
                    pass           # best effort: the device expires it on its own
        finally:
            try:
                self.session.close()
            except Exception:  # pylint: disable=broad-except
                pass

    # --- requests ---------------------------------------------------------

    def get(self, path, params=None, what=None):
        return self.request("GET", path, params=params, what=what)

    def request(self, method, path, params=None, body=None, what=None):
        """Send one request; return the parsed JSON answer (or {}).  ``what`` names
        the object for messages, e.g. 'pool /Common/web'."""
        if self.auth_mode is None:
            self.login()
        read = method == "GET"
        resp = self._send(method, path, params=params, body=body, retry=read)
        if resp.status_code == 401 and self.auth_mode == "token":
            # Expired, revoked or forgotten token: log in once more (never from
            # the cache) and repeat the request once.
            if self.token_from_cache:
                self.cache.forget(self.server, self.port, self.user, self.token)
            self.token = None
            self.login(use_cache=False)
            resp = self._send(method, path, params=params, body=body, retry=read)
        return self._answer(resp, method, path, what)

    def collection(self, path, params=None, what=None):
        """All items of a collection, following ``nextLink`` pages if the device pages."""
        body = self.get(path, params=params, what=what)
        items = list(body.get("items") or [])
        seen = 0
        while body.get("nextLink") and seen < 10000:
            seen += 1
            link = urlsplit(body["nextLink"])
            page_params = dict(p.split("=", 1) for p in link.query.split("&") if "=" in p)
            page_params.pop("ver", None)
            body = self.get(link.path, params=dict((k, unquote(v)) for k, v in page_params.items()), what=what)
            items.extend(body.get("items") or [])
        return items

    def _headers(self, auth):
        headers = {"Content-Type": "application/json"}
        if auth and self.token:
            headers["X-F5-Auth-Token"] = self.token
        return headers

    def _send(self, method, path, params=None, body=None, retry=False, auth=True):
        """One HTTP exchange within ``timeout``, retried with back-off for reads on
        5xx and dropped connections (never after the deadline cut it)."""
        url = self.base + path
        data = None if body is None else json.dumps(body)
        attempts = (self.retries + 1) if retry else 1
        delay = self.backoff
        for attempt in range(attempts):
            last = attempt == attempts - 1
            timer = self.watchdog.start(self.timeout)
            try:
                self.sent += 1
                # verify= on EVERY request: a session-level verify=False loses against
                # REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment (requests #3829).
                resp = self.session.request(method, url, params=params, data=data,
                                            headers=self._headers(auth), verify=self.verify,
                                            timeout=self.timeout, allow_redirects=False)
            except Exception as exc:  # pylint: disable=broad-except
                if self.watchdog.fired:
                    raise self._deadline(method, path)
                error = self._transport_error(exc, method, path)
                if error is None and not last:
                    self.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
                    continue
                raise error or self._dropped(exc, method, path, retried=attempt)
            finally:
                timer.cancel()
            if self.watchdog.fired:
                # Cut at the deadline after the status line: what arrived is not the whole answer.
                raise self._deadline(method, path)
            if retry and resp.status_code in self.RETRY_STATUS and not last:
                self.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            return resp

    def _deadline(self, method, path):
        changes = method != "GET" and path != LOGIN_PATH
        return UnreachableError("%s: no complete answer to %s %s within timeout=%gs (the device answers, but "
                                "too slowly); check the device's load, or raise timeout%s"
                                % (self.where, method, path, self.timeout,
                                   "; the change may or may not have been applied, so run the task again (it is "
                                   "idempotent)" if changes else ""))

    def _transport_error(self, exc, method, path):
        """An LBError for failures never worth retrying; None for a dropped
        connection or a read timeout (retried for reads)."""
        exceptions = requests.exceptions
        if isinstance(exc, exceptions.SSLError):
            return UnreachableError("%s (%s)" % (tls_hint(self.where), _ssl_reason(exc)))
        if isinstance(exc, exceptions.ConnectTimeout):
            return UnreachableError("%s: no connection within timeout=%gs; check server and server_port, and "
                                    "that this host can reach the management address"
                                    % (self.where, self.timeout))
        if isinstance(exc, exceptions.ConnectionError) and _never_connected(exc):
            return UnreachableError("%s: cannot connect (%s); check server and server_port, and that this host "
                                    "can reach the management address" % (self.where, _connect_reason(exc)))
        if isinstance(exc, (exceptions.ConnectionError, exceptions.Timeout, exceptions.ChunkedEncodingError)):
            return None
        if isinstance(exc, exceptions.RequestException):
            return UnreachableError("%s: %s %s failed (%s); check server and server_port"
                                    % (self.where, method, path, one_line(exc)))
        raise exc

    def _dropped(self, exc, method, path, retried):
        if method == "GET" or path == LOGIN_PATH:
            return UnreachableError("%s: connection lost during GET %s (%s), also after %d retries; check the "
                                    "device and try again" % (self.where, path, one_line(exc, 200), retried))
        return UnreachableError("%s: connection lost during %s %s (%s); the change may or may not have been "
                                "applied; run the task again (it is idempotent)"
                                % (self.where, method, path, one_line(exc, 200)))

    def _answer(self, resp, method, path, what):
        status = resp.status_code
        what = what or "%s %s" % (self.where, path)
        if 200 <= status < 300:
            if not resp.content:
                return {}
            try:
                return resp.json()
            except ValueError:
                raise CommandError("%s: %s answered %s %s with no JSON (%s); check that server names a "
                                   "BIG-IP management address" % (what, self.where, method, path,
                                                                  one_line(resp.text, 200)))
        message = _device_message(resp)
        if status == 401:
            if self.auth_mode == "basic":
                hint = ("token login answered %s, so basic authentication was used, which works for local "
                        "users only" % self.login_answer)
                raise AuthRefusedError("%s: user %s was refused (%s); check user and password; %s"
                                       % (self.where, self.user, one_line(message, 200), hint))
            raise AuthRefusedError("%s: user %s was refused again after logging in once more (%s); check the "
                                   "user's role and the device's token settings"
                                   % (self.where, self.user, message))
        if status == 403:
            raise PermissionDeniedError("%s: user %s may not %s %s (%s); use a user with a role that can "
                                        "manage pool members in this partition"
                                        % (what, self.user, method, path, message))
        if status == 404:
            error = NotFoundError("%s: not found on %s (%s); check the name and the partition"
                                  % (what, self.where, message))
            error.device_message = message
            raise error
        if status == 409:
            raise CommandError("%s: %s refused %s with 409 conflict (%s); re-read the state (e.g. with "
                               "f5_pool_member_info) and run the task again" % (what, self.where, method, message))
        if status == 400 and "01070822" in message:
            raise denied_error(what, self.user, self.where, message)
        if status == 400:
            # The device's body, verbatim (on one line).
            raise CommandError("%s: %s refused %s %s with 400: %s"
                               % (what, self.where, method, path, one_line(resp.text or "", 1000)))
        raise CommandError("%s: %s answered %d to %s %s (%s); try again later"
                           % (what, self.where, status, method, path, message))


def _expiry(token):
    """A login answer's token -> its expiry (epoch seconds)."""
    try:
        micros = token.get("expirationMicros")
        if micros:
            return float(micros) / 1e6
        return time.time() + float(token.get("timeout") or 1200)
    except (TypeError, ValueError, AttributeError):
        return time.time() + 1200


def _device_message(resp):
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return one_line(body["message"])
    return one_line(resp.text or resp.reason or "no body")


def _ssl_reason(exc):
    text = str(exc)
    match = re.search(r"certificate verify failed: ([^()'\"]+)", text)
    if match:
        return "certificate verify failed: %s" % match.group(1).strip()
    return one_line(text, 200)


def _never_connected(exc):
    """True when the TCP connection was never established (refused, no route, DNS)."""
    text = str(exc)
    return any(marker in text for marker in (
        "Failed to establish a new connection", "NewConnectionError", "Name or service not known",
        "nodename nor servname", "NameResolutionError", "Connection refused", "No route to host"))


def _connect_reason(exc):
    text = str(exc)
    for marker in ("Connection refused", "No route to host", "Name or service not known",
                   "Temporary failure in name resolution", "Network is unreachable"):
        if marker in text:
            return marker
    return one_line(text, 200)


# --------------------------------------------------------------------------
# The transport interface, and its iControl REST implementation
# --------------------------------------------------------------------------

class Transport(object):
    """What ``F5Backend`` asks of a wire.  Members travel as members-collection
    items (REST's JSON shape: ``name``, ``partition``, ``fullPath``, ``address``,
    ``session``, ``state``, ``ratio`` ...) and their stats as flat dictionaries
    of REST's stat names (``serverside.curConns``, ``status.enabledState`` ...),
    whichever wire they came over."""

    where = "F5"
    can_set_ratio = True      # weight (the ratio) can be written
    reads_ha = True           # device() and sync_status() say something

    def lock_key(self):
        return "f5 %s" % self.where

    def read(self, pools, partition, relevant, only=None):
        """[(pool, [item], {full path: stats})] for the named pools (None: every
        pool of ``partition``); stats only for pools where ``relevant(pool, items)``,
        and there, with ``only``, only of the items ``only(pool, item)`` picks
        (transports may read more)."""
        raise NotImplementedError

    def pool_stats(self, pool, items):
        """{full path: stats} of every member of ``pool`` now (``items``: the members
        last known, for transports that must name them)."""
        raise NotImplementedError

    def member_stats(self, pool, items):
        """{full path: stats} of just these members now; a deleted one is left out."""
        raise NotImplementedError

    def member_config(self, pool, item):
        """The member's configuration item as the device holds it now, or None if gone."""
        raise NotImplementedError

    def set_admin(self, pool, item, admin, ratio=None):
        """Write the admin state (both fields, always), and the ratio if given."""
        raise NotImplementedError

    def new_member(self, selector, partition):
        """(member name, its partition, address to report, create spec) for adding it."""
        raise NotImplementedError

    def add_member(self, pool, create, ratio=None):
        """Add an enabled member; return its item."""
        raise NotImplementedError

    def remove_member(self, pool, item):
        """Delete the member from the pool (never its node)."""
        raise NotImplementedError

    def device(self):
        """The device and its HA setup, see ``device_facts``; None when unknown."""
        return None

    def notices(self):
        """Warnings about the transport itself (a token cache it could not use)."""
        return []

    def sync_status(self):
        """(status, [detail lines]) of ``/mgmt/tm/cm/sync-status``."""
        raise NotImplementedError

    def config_sync(self, group):
        """Start ``config-sync to-group <group>``."""
        raise NotImplementedError

    def close(self):
        pass


def device_facts(groups, devices):
    """What the backend knows about a device's HA setup, from ``/mgmt/tm/cm``:

        {"name": this device, "state": "active"|"standby",
         "group": None, or {"name", "auto_sync", "devices": [names]} of its sync-failover group,
         "devices": [{"name", "address", "state"}]}
    """
    me = [d for d in devices if str(d.get("selfDevice")) == "true"]
    name = me[0].get("name") if me else None
    group = None
    for item in groups:
        members = [d.get("name") for d in ((item.get("devicesReference") or {}).get("items") or [])]
        if item.get("type") == "sync-failover" and (name in members or not members):
            group = dict(name=item.get("fullPath") or "/Common/%s" % item.get("name"),
                         auto_sync=item.get("autoSync") == "enabled", devices=members)
            break
    return dict(name=name, state=me[0].get("failoverState") if me else None, group=group,
                devices=[dict(name=d.get("name"), address=d.get("managementIp"), state=d.get("failoverState"))
                         for d in devices])


class RestTransport(Transport):
    """The transport over iControl REST.

    A named pool costs two requests whatever its size: the members collection
    (configuration) and its ``/stats`` (counters and status).  With no pool, one
    request lists every pool of the partition with its members
    (``expandSubcollections``), and stats are read only for the pools that hold
    a member in scope."""

    def __init__(self, client):
        self.client = client
        self.where = client.where
        self.user = client.user
        self._facts = None
        self._node_list = None

    def lock_key(self):
        return "f5 %s" % self.client.where

    def notices(self):
        cache = self.client.cache
        return [cache.warning] if cache is not None and cache.warning else []

    def read(self, pools, partition, relevant, only=None):
        out = []
        if pools:
            for pool in pools:
                items = self.client.collection(pool_url(pool) + "/members", params={"$select": MEMBER_FIELDS},
                                               what="pool %s" % pool)
                out.append((pool, items))
        else:
            try:
                listed = self.client.collection(POOL_PATH, params={
                    "expandSubcollections": "true", "$filter": "partition eq %s" % partition},
                    what="partition %s" % partition)
            except NotFoundError as error:
                raise NotFoundError("partition %s: not found on %s (%s); check partition"
                                    % (partition, self.where, getattr(error, "device_message", "")))
            for pool in listed:
                if pool.get("partition", partition) != partition:
                    continue
                path = pool.get("fullPath") or "/%s/%s" % (partition, pool["name"])
                out.append((path, ((pool.get("membersReference") or {}).get("items")) or []))
        result = []
        for pool, items in out:
            stats = None
            if items and relevant(pool, items):
                chosen = [i for i in items if only(pool, i)] if only is not None else items
                stats = self.member_stats(pool, chosen) if only is not None else self.pool_stats(pool, items)
            result.append((pool, items, stats))
        return result

    def pool_stats(self, pool, items):
        return parse_stats(self.client.get(pool_url(pool) + "/members/stats", what="pool %s" % pool))

    def member_stats(self, pool, items):
        if len(items) > PER_MEMBER_POLL:
            return self.pool_stats(pool, items)
        stats = {}
        for item in items:
            try:
                stats.update(parse_stats(self.client.get(member_url(pool, full_path_of(item)) + "/stats",
                                                         what="member %s in pool %s" % (item["name"], pool))))
            except NotFoundError:
                pass    # deleted meanwhile: reported as gone
        return stats

    def member_config(self, pool, item):
        try:
            return self.client.get(member_url(pool, full_path_of(item)), params={"$select": MEMBER_FIELDS},
                                   what="member %s in pool %s" % (item["name"], pool))
        except NotFoundError:
            return None

    def set_admin(self, pool, item, admin, ratio=None):
        body = dict(WRITE_FIELDS[admin])
        if ratio is not None:
            body["ratio"] = int(ratio)
        answer = self.client.request("PATCH", member_url(pool, full_path_of(item)), body=body,
                                     what="member %s in pool %s" % (item["name"], pool))
        return answer if answer.get("name") else dict(item, **body)

    def new_member(self, selector, partition):
        """An existing node of that address is reused, whatever its name."""
        nodes = self._nodes()
        wanted = selector.node_name
        if selector.address is not None:
            same = [n for n in nodes if same_address(selector.address, n.get("address"))]
            if same:
                node = same[0]
                if wanted is not None and wanted != node["name"]:
                    raise InvalidInputError(
                        "node %s: address %s already belongs to node /%s/%s; use name: %s (or omit name) to add "
                        "a member on that node" % (wanted, selector.address, node.get("partition", "Common"),
                                                   node["name"], node["name"]))
                node_name, node_partition, send = node["name"], node.get("partition") or partition, None
                address = node.get("address")
            else:
                node_name, node_partition, send = wanted or selector.address, partition, selector.address
                address = selector.address
        else:
            named = [n for n in nodes if n["name"] == wanted]
            if named:
                mine = [n for n in named if n.get("partition") == partition] or named
                node_name, node_partition, send = wanted, mine[0].get("partition") or partition, None
                address = mine[0].get("address")
            elif parse_ip(wanted) is not None:
                node_name, node_partition, send, address = wanted, partition, wanted, wanted
            else:
                raise InvalidInputError("node %s: not found in partition %s, so a member on it cannot be added; "
                                        "give address to create the node" % (wanted, partition))
        name = join_member_name(node_name, selector.port)
        return name, node_partition, address, dict(name=name, partition=node_partition, address=send)

    def add_member(self, pool, create, ratio=None):
        body = dict(name=create["name"], partition=create["partition"])
        if create.get("address"):
            body["address"] = create["address"]   # raw, '%2' and all
        body.update(WRITE_FIELDS["enabled"])
        if ratio is not None:
            body["ratio"] = int(ratio)
        item = self.client.request("POST", pool_url(pool) + "/members", body=body,
                                   what="member %s in pool %s" % (create["name"], pool))
        return item or dict(body, fullPath="/%s/%s" % (create["partition"], create["name"]))

    def remove_member(self, pool, item):
        self.client.request("DELETE", member_url(pool, full_path_of(item)),
                            what="member %s in pool %s" % (item["name"], pool))

    def _nodes(self):
        if self._node_list is None:
            self._node_list = self.client.collection(NODE_PATH, params={"$select": "name,partition,fullPath,address"},
                                                     what="nodes")
        return self._node_list

    # --- HA --------------------------------------------------------------------

    def device(self):
        """Standalone devices are remembered with the cached token (one request
        per token lifetime); a device in a group is read on every run, as its
        failover state is what matters."""
        if self._facts is not None:
            return self._facts
        if self.client.auth_mode is None:
            self.client.login()
        cached = self.client.cached_facts
        if cached and cached.get("group") is None:
            self._facts = cached
            return cached
        groups = self.client.collection(DEVICE_GROUP_PATH, params={"expandSubcollections": "true"},
                                        what="device groups")
        if not any(g.get("type") == "sync-failover" for g in groups):
            devices = [dict(name=None, selfDevice="true", failoverState="active")]
            self._facts = device_facts(groups, devices)
            self.client.remember_facts(self._facts)
            return self._facts
        self._facts = device_facts(groups, self.devices())
        return self._facts

    def devices(self):
        return self.client.collection(DEVICE_PATH, params={"$select": "name,managementIp,failoverState,selfDevice"},
                                      what="devices")

    def refresh_devices(self):
        """The failover states now (one request); returns the updated facts."""
        facts = self._facts or self.device()
        if facts and facts.get("group"):
            fresh = device_facts([], self.devices())
            facts = dict(facts, state=fresh["state"], devices=fresh["devices"])
            self._facts = facts
        return facts

    def sync_status(self):
        body = self.client.get(SYNC_STATUS_PATH, what="sync status")
        status, details = None, []
        for entry in (body.get("entries") or {}).values():
            values = (entry.get("nestedStats") or {}).get("entries") or {}
            status = _stat(values, "status")
            details = _detail_lines(values)
        return status, details

    def config_sync(self, group):
        self.client.request("POST", CM_PATH, body={"command": "run", "utilCmdArgs": "config-sync to-group %s"
                                                   % group}, what="device group %s" % group)

    def close(self):
        self.client.close()


def _detail_lines(values):
    lines = []
    for key, entry in values.items():
        if isinstance(entry, dict) and "nestedStats" in entry:
            inner = (entry["nestedStats"] or {}).get("entries") or {}
            if "details" in inner:
                lines.append(str(_stat(inner, "details")))
            lines.extend(_detail_lines(inner))
    return lines
# --------------------------------------------------------------------------
# iControl SOAP (bigsuds)
# --------------------------------------------------------------------------


_BIGSUDS = []


def _bigsuds_import_error():
    try:
        _import_bigsuds()
    except ImportError:
        return traceback.format_exc()
    return None


def _import_bigsuds():
    if not _BIGSUDS:
        import bigsuds  # pylint: disable=import-error
        _BIGSUDS.append(bigsuds)
    return _BIGSUDS[0]


# SOAP enums -> the REST read values (config item) and stats values they stand for.
SESSION_STATUS = {
    "SESSION_STATUS_ENABLED": ("user-enabled", "enabled"),
    "SESSION_STATUS_ADDRESS_DISABLED": ("user-enabled", "disabled-by-parent"),
    "SESSION_STATUS_SERVICE_DISABLED": ("user-disabled", "disabled"),
    "SESSION_STATUS_DISABLED": ("user-disabled", "disabled"),
    "SESSION_STATUS_FORCED_DISABLED": ("user-disabled", "disabled"),
}
MONITOR_STATUS = {
    "MONITOR_STATUS_UP": "up", "MONITOR_STATUS_DOWN": "down", "MONITOR_STATUS_FORCED_DOWN": "user-down",
    "MONITOR_STATUS_UNCHECKED": "unchecked", "MONITOR_STATUS_CHECKING": "checking",
    "MONITOR_STATUS_MAINT": "down", "MONITOR_STATUS_ADDRESS_DOWN": "down",
}
AVAILABILITY = {
    "AVAILABILITY_STATUS_GREEN": "available", "AVAILABILITY_STATUS_BLUE": "unknown",
    "AVAILABILITY_STATUS_RED": "offline", "AVAILABILITY_STATUS_YELLOW": "unavailable",
    "AVAILABILITY_STATUS_GRAY": "unknown", "AVAILABILITY_STATUS_NONE": "unknown",
}
ENABLED_STATUS = {
    "ENABLED_STATUS_ENABLED": "enabled", "ENABLED_STATUS_DISABLED": "disabled",
    "ENABLED_STATUS_DISABLED_BY_PARENT": "disabled-by-parent", "ENABLED_STATUS_NONE": None,
}
SESSION_STAT = {"SESSION_STATUS_ENABLED": "enabled", "SESSION_STATUS_ADDRESS_DISABLED": "addr-disabled",
                "SESSION_STATUS_SERVICE_DISABLED": "user-disabled", "SESSION_STATUS_DISABLED": "user-disabled",
                "SESSION_STATUS_FORCED_DISABLED": "user-disabled"}
# SOAP statistic -> (REST stat name, factor): REST counts bits where SOAP counts bytes.
SOAP_STATS = {"STATISTIC_SERVER_SIDE_CURRENT_CONNECTIONS": ("serverside.curConns", 1),
              "STATISTIC_CURRENT_SESSIONS": ("curSessions", 1),
              "STATISTIC_SERVER_SIDE_TOTAL_CONNECTIONS": ("serverside.totConns", 1),
              "STATISTIC_SERVER_SIDE_MAXIMUM_CONNECTIONS": ("serverside.maxConns", 1),
              "STATISTIC_TOTAL_REQUESTS": ("totRequests", 1),
              "STATISTIC_SERVER_SIDE_BYTES_IN": ("serverside.bitsIn", 8),
              "STATISTIC_SERVER_SIDE_BYTES_OUT": ("serverside.bitsOut", 8)}


def soap_u64(value):
    """iControl ``Common.ULong64 {high, low}`` -> int."""
    if isinstance(value, dict):
        return (int(value.get("high") or 0) << 32) | int(value.get("low") or 0)
    return int(value or 0)


def soap_stats(entry):
    """One ``MemberStatisticEntry`` -> (node full path, port, {stat name: value})."""
    flat = {}
    for row in entry.get("statistics") or []:
        known = SOAP_STATS.get(row.get("type"))
        if known:
            key, factor = known
            flat[key] = soap_u64(row.get("value")) * factor
    member = entry.get("member") or {}
    return member.get("address"), int(member.get("port") or 0), flat


def soap_item(node_path, port, session_status=None, monitor_status=None):
    """A SOAP member -> the members-collection item shape ``member_record`` reads."""
    partition, dummy, node = node_path.strip("/").partition("/")
    if not node:
        partition, node = "Common", partition
    name = join_member_name(node.rsplit("/", 1)[-1], port)
    session = SESSION_STATUS.get(session_status, ("user-enabled", None))[0]
    state = MONITOR_STATUS.get(monitor_status, "unchecked")
    address = node.rsplit("/", 1)[-1] if parse_ip(node.rsplit("/", 1)[-1]) is not None else None
    return {"name": name, "partition": partition, "fullPath": join_member_name(node_path, port),
            "address": address, "session": session, "state": state, "node_path": node_path, "port": port}


class SoapClient(object):
    """bigsuds, with TLS handled like the REST client and errors translated."""

    def __init__(self, server, server_port=443, user=None, password=None, validate_certs=True, timeout=30.0):
        try:
            bigsuds = _import_bigsuds()
        except ImportError as exc:
            raise InvalidInputError("library bigsuds: cannot be imported on this host (%s); install it with: %s"
                                    % (exc, BIGSUDS_INSTALL))
        self.where = "F5 %s:%d (SOAP)" % (server, int(server_port))
        self.bigsuds = bigsuds
        self.timeout = float(timeout)
        self.watchdog = _Watchdog()
        self.api = _make_bigip(bigsuds, server, int(server_port), user, password, bool(validate_certs),
                               self.timeout, self.watchdog)
        self.user = user
        self.sent = 0

    def close(self):
        pass   # SOAP uses basic authentication: no token to delete

    def call(self, method, *args):
        """One LocalLB.Pool call, within ``timeout`` as a whole (the watchdog cuts
        a device that answers a byte at a time)."""
        self.sent += 1
        timer = self.watchdog.start(self.timeout)
        try:
            answer = getattr(self.api.LocalLB.Pool, method)(*args)
        except Exception as exc:  # pylint: disable=broad-except
            if self.watchdog.fired:
                raise self._deadline(method)
            raise self._translate(exc, method, args)
        finally:
            timer.cancel()
        if self.watchdog.fired:
            raise self._deadline(method)
        return answer

    def _deadline(self, method):
        return UnreachableError("%s: no complete answer to LocalLB.Pool.%s within timeout=%gs; check the device's "
                                "load, or raise timeout" % (self.where, method, self.timeout))

    def _translate(self, exc, method, args):
        if isinstance(exc, self.bigsuds.ServerError):
            text = _fault_text(exc)
            pools = ", ".join(args[0]) if args and isinstance(args[0], list) else ""
            what = "pool %s" % pools if pools else self.where
            if "was not found" in text:
                return NotFoundError("%s: not found on %s (%s); check the name and the partition"
                                     % (what, self.where, text))
            if "01070822" in text:
                return denied_error(what, self.user, self.where, text)
            return CommandError("%s: %s refused LocalLB.Pool.%s: %s" % (what, self.where, method, text))
        if isinstance(exc, (self.bigsuds.OperationFailed, OSError, ssl.SSLError)):
            return self._connection_error(exc)
        # suds raises plain exceptions for answers it cannot parse
        return CommandError("%s: LocalLB.Pool.%s failed (%s: %s); check that the device serves iControl SOAP, "
                            "or use transport: rest" % (self.where, method, type(exc).__name__, one_line(exc, 300)))

    def _connection_error(self, exc):
        text = one_line(exc, 300)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return UnreachableError("%s (%s)" % (tls_hint(self.where), _ssl_reason(exc)))
        if "401" in text or "Unauthorized" in text or "invalid credentials" in text:
            return AuthRefusedError("%s: user %s was refused (%s); check user and password (or F5_USER / "
                                    "F5_PASSWORD)" % (self.where, self.user, text))
        return UnreachableError("%s: cannot talk iControl SOAP (%s); check server and server_port, and that "
                                "the device serves /iControl/iControlPortal.cgi" % (self.where, text))


def _fault_text(exc):
    fault = getattr(exc, "fault", None)
    text = getattr(fault, "faultstring", None) or str(exc)
    match = re.search(r"error_string\s*:\s*(.+)", str(text))
    return one_line(match.group(1) if match else text, 400)


def _tls_context(verify):
    if not verify:
        return ssl._create_unverified_context()  # pylint: disable=protected-access
    cafile = None
    for var in CA_ENV:
        if os.environ.get(var):
            cafile = os.environ[var]
            break
    return ssl.create_default_context(cafile=cafile)


def _make_bigip(bigsuds, server, port, user, password, verify, timeout, watchdog):
    """A bigsuds.BIGIP whose suds clients use our TLS context (REQUESTS_CA_BUNDLE /
    CURL_CA_BUNDLE honoured as for REST) and send credentials with the first request."""
    from suds.client import Client  # pylint: disable=import-error
    from suds.transport.https import HttpAuthenticated  # pylint: disable=import-error
    from suds.xsd.doctor import Import, ImportDoctor  # pylint: disable=import-error
    try:
        from http.client import HTTPSConnection
        from urllib.request import HTTPSHandler
    except ImportError:  # pragma: no cover
        from httplib import HTTPSConnection  # type: ignore
        from urllib2 import HTTPSHandler  # type: ignore

    class WatchedConnection(HTTPSConnection):
        def connect(self):
            HTTPSConnection.connect(self)
            watchdog.add(self.sock)

    class WatchedHandler(HTTPSHandler):
        def https_open(self, req):
            return self.do_open(WatchedConnection, req, context=context)

    context = _tls_context(verify)
    auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")

    class Transport(HttpAuthenticated):
        def u2handlers(self):
            handlers = HttpAuthenticated.u2handlers(self)
            handlers.append(WatchedHandler(context=context))
            return handlers

        def open(self, request):
            request.headers = dict(request.headers or {}, Authorization=auth)
            return HttpAuthenticated.open(self, request)

    host = "[%s]" % server if ":" in server else server

    class BIGIP(bigsuds.BIGIP):
        def _create_client(self, wsdl_name):
            url = "https://%s:%s/iControl/iControlPortal.cgi?WSDL=%s" % (host, port, wsdl_name)
            imp = Import("http://schemas.xmlsoap.org/soap/encoding/")
            imp.filter.add("urn:iControl")
            try:
                client = Client(url, doctor=ImportDoctor(imp), username=user, password=password, cache=None,
                                transport=Transport(username=user, password=password, timeout=timeout),
                                timeout=timeout, headers={"Authorization": auth})
            except Exception as exc:  # pylint: disable=broad-except
                raise bigsuds.ConnectionError(str(exc))
            client.set_options(location=url.split("?")[0])
            client.factory.separator("_")
            return self._create_client_wrapper(client, wsdl_name)

    return BIGIP(server, username=user, password=password, verify=verify, timeout=timeout, port=port)


class SoapTransport(Transport):
    """The transport over iControl SOAP (``LocalLB.Pool``), for old devices.

    A whole read is five calls however many pools and members: ``get_member_v2``,
    then session, monitor and object status and ``get_all_member_statistics`` for
    the pools that hold the member.  A look at some members is four calls
    (statistics, object, session and monitor status); SOAP cannot set the ratio,
    create a named node, or read the HA setup."""

    can_set_ratio = False
    reads_ha = False

    def __init__(self, client):
        self.client = client
        self.where = client.where
        self.user = client.user

    def read(self, pools, partition, relevant, only=None):
        call = self.client.call
        if not pools:
            prefix = "/%s/" % partition
            pools = [p for p in call("get_list") if p.startswith(prefix)]
        if not pools:
            return []
        members = call("get_member_v2", pools)
        rows = []
        for pool, mem in zip(pools, members):
            items = [soap_item(a["address"], int(a["port"])) for a in mem or []]
            rows.append((pool, items, bool(items) and relevant(pool, items)))
        wanted = [(pool, items) for pool, items, keep in rows if keep]
        stats = self._status(wanted, statistics="all") if wanted else {}
        return [(pool, self._with_config(pool, items, stats.get(pool, {})), stats.get(pool) if keep else None)
                for pool, items, keep in rows]

    def pool_stats(self, pool, items):
        members = self.client.call("get_member_v2", [pool])[0] or []
        current = [soap_item(a["address"], int(a["port"])) for a in members]
        return self._status([(pool, current)]).get(pool, {}) if current else {}

    def member_stats(self, pool, items):
        return self._status([(pool, items)]).get(pool, {}) if items else {}

    def member_config(self, pool, item):
        stats = self.member_stats(pool, [item]).get(full_path_of(item))
        if stats is None:
            return None
        return soap_item(item["node_path"], item["port"], stats.get("_session"), stats.get("_monitor"))

    def _with_config(self, pool, items, stats):
        """The items with the session/state the status calls read."""
        out = []
        for item in items:
            flat = stats.get(full_path_of(item)) or {}
            out.append(soap_item(item["node_path"], item["port"], flat.get("_session"), flat.get("_monitor")))
        return out

    def _status(self, pool_items, statistics="some"):
        """{pool: {full path: stats}} for the members in ``pool_items``: four calls."""
        call = self.client.call
        names = [pool for pool, dummy in pool_items]
        lists = [[{"address": i["node_path"], "port": i["port"]} for i in items] for dummy, items in pool_items]
        sessions = call("get_member_session_status", names, lists)
        monitors = call("get_member_monitor_status", names, lists)
        statuses = call("get_member_object_status", names, lists)
        counters = (call("get_all_member_statistics", names) if statistics == "all"
                    else call("get_member_statistics", names, lists))
        out = {}
        for index, (pool, items) in enumerate(pool_items):
            by_member = {}
            for entry in (counters[index] or {}).get("statistics") or []:
                node_path, port, flat = soap_stats(entry)
                by_member[(node_path, port)] = flat
            mine = out.setdefault(pool, {})
            for pos, item in enumerate(items):
                flat = dict(by_member.get((item["node_path"], item["port"])) or {})
                status = statuses[index][pos] or {}
                flat["status.availabilityState"] = AVAILABILITY.get(status.get("availability_status"), "unknown")
                flat["status.enabledState"] = ENABLED_STATUS.get(status.get("enabled_status"))
                flat["status.statusReason"] = status.get("status_description")
                flat["sessionStatus"] = SESSION_STAT.get(sessions[index][pos])
                if monitors[index][pos] == "MONITOR_STATUS_FORCED_DOWN":
                    flat["monitorStatus"] = "forced down"
                flat["_session"], flat["_monitor"] = sessions[index][pos], monitors[index][pos]
                mine[full_path_of(item)] = flat
        return out

    def set_admin(self, pool, item, admin, ratio=None):
        """Both halves of the admin state, always: session, then monitor state."""
        target = [[{"address": item["node_path"], "port": item["port"]}]]
        session = "STATE_ENABLED" if admin == "enabled" else "STATE_DISABLED"
        monitor = "STATE_DISABLED" if admin == "forced_offline" else "STATE_ENABLED"
        self.client.call("set_member_session_enabled_state", [pool], target, [[session]])
        self.client.call("set_member_monitor_state", [pool], target, [[monitor]])
        return dict(item, **WRITE_FIELDS[admin])

    def new_member(self, selector, partition):
        # add_member_v2 takes a node *name*: an existing node, or an IP address the
        # device then creates a node for (a new named node needs transport: rest).
        node_name = selector.node_name or selector.address
        name = join_member_name(node_name, selector.port)
        address = selector.address or (node_name if parse_ip(node_name) is not None else None)
        return name, partition, address, dict(node_path="/%s/%s" % (partition, node_name), port=selector.port)

    def add_member(self, pool, create, ratio=None):
        target = {"address": create["node_path"], "port": int(create["port"])}
        self.client.call("add_member_v2", [pool], [[target]])
        return self.set_admin(pool, soap_item(create["node_path"], int(create["port"])), "enabled")

    def remove_member(self, pool, item):
        target = {"address": item["node_path"], "port": item["port"]}
        self.client.call("remove_member_v2", [pool], [[target]])   # the node stays


# --------------------------------------------------------------------------
# The backend the core drives
# --------------------------------------------------------------------------

class F5Backend(Backend):
    """The core's backend for BIG-IP pool members (see ``member.Backend`` for the
    contract), over either transport.

    Reads.  The plan reads the members (configuration) and their stats.  The
    floor check that follows a write, and every look while waiting, read stats
    only: they carry each member's admin state (``status_admin_state``).  Where
    stats and what this run knows disagree, the floor check counts the member as
    out of rotation (the safe side for the guard), and a look while waiting
    confirms against the member's configuration (one request) before reporting
    it, so stats that lag behind a write never look like somebody else's change.

    HA pairs.  A member's state is configuration, which a sync-failover device
    group with manual sync does not copy to the peer by itself.  Before its
    first write a run reads the group's sync status (a group already out of
    sync is warned about); after writing it runs ``config-sync to-group`` when
    ``config_sync`` is on (else warns that the peer lacks the change); while
    waiting it checks every look which device is active, and when the one it
    talks to has become standby it follows the failover to the new active
    device (``follow``), whose copy of the member then decides -- re-asserted by
    the core if it lacks the drain.
    """

    kind = "F5"
    container_label = "pool"
    member_label = "member"
    removes_member = True   # absent deletes the member: the core drains and waits first
    can_force = True        # forced offline (open connections still finish: see force())
    default_poll_interval = 0.5

    def __init__(self, transport, partition="Common", drain_mode="disabled", selector=None, config_sync=False,
                 follow=None):
        super(F5Backend, self).__init__()
        self.transport = transport
        self.partition = check_partition(partition)
        if drain_mode not in DRAIN_MODES:
            raise InvalidInputError("drain_mode %s: not one of %s" % (drain_mode, ", ".join(DRAIN_MODES)))
        self.drain_mode = drain_mode
        self.selector = selector
        self.config_sync = bool(config_sync)
        self.follow = follow              # management address -> Transport (following a failover)
        self._items = {}                  # (pool, member name) -> item as last read or written
        self._pools = []                  # pools holding targets: stats read, watched while waiting
        self._floor_due = False           # took a member out: the core's next read is its floor check
        self._unsynced = False            # written, and the device group does not have it yet
        self._floor_answer = None         # (monotonic time, {pool: stats}) of the last floor check
        self._facts = None                # transport.device(), once asked
        self._group_was_in_sync = None
        self._told_unsynced = False
        self._running = False             # driven by member.run (validate was called), not describe

    def close(self):
        self.transport.close()

    def lock_key(self):
        return self.transport.lock_key()

    # --- before any I/O --------------------------------------------------------

    def validate(self, request):
        drain_mode = request.options.get("drain_mode", self.drain_mode) or "disabled"
        if drain_mode not in DRAIN_MODES:
            raise InvalidInputError("drain_mode %s: not one of %s" % (drain_mode, ", ".join(DRAIN_MODES)))
        self.selector = request        # any of its selectors
        self.drain_mode = drain_mode
        self._running = True
        for pool in request.containers or []:
            pool_path(pool, self.partition)
        if request.weight is not None and not 1 <= int(request.weight) <= MAX_RATIO:
            raise InvalidInputError("weight %s: F5 ratio must be between 1 and %d; check weight"
                                    % (request.weight, MAX_RATIO))
        if request.weight is not None and request.state == "present" and not self.transport.can_set_ratio:
            raise InvalidInputError("weight %s: setting the ratio needs transport: rest; drop weight or use "
                                    "transport: rest" % request.weight)
        if self.config_sync and not self.transport.reads_ha:
            raise InvalidInputError("config_sync: needs transport: rest (iControl SOAP here cannot read or sync "
                                    "device groups); use transport: rest, or set config_sync: false")

    # --- reads -----------------------------------------------------------------------

    def read(self, containers):
        if self._floor_due and self._pools:
            # Kept short: until it returns, a floor crossed with another run cannot be repaired.
            self._floor_due = False
            return self._floor_read()
        self._floor_due = False
        self._sync_written()
        records = self._full_read(containers)
        for text in self.transport.notices():
            self.warn(text)
        return records

    def poll(self, containers):
        self._sync_written()
        records = self._poll_stats()
        # The failover state is read after the stats, not before: a failover
        # between the two reads would otherwise let the new standby's empty
        # stats end the wait while the connections go on on the new active.
        if self._follow_failover():
            return [m for m in self._full_read(self._pools or containers) if self._selected(m.container, m)]
        return records

    def _poll_stats(self):
        """The targets' records from their stats (or from the floor check's
        answer, when it is fresh)."""
        answer, self._floor_answer = self._floor_answer, None
        if answer is not None and time.monotonic() - answer[0] > REUSE_WINDOW:
            answer = None
        records = []
        for pool in self._pools:
            targets = [item for (cpool, dummy), item in list(self._items.items())
                       if cpool == pool and self._selected(pool, item)]
            if answer is not None and pool in answer[1]:
                stats = answer[1][pool]
            else:
                stats = self.transport.member_stats(pool, targets)
            for item in targets:
                found = stats.get(full_path_of(item))
                records.append(gone_record(pool, item) if found is None else self._looked_at(pool, item, found))
        return [r for r in records if r is not None]

    def _full_read(self, containers):
        """Members and their stats.  In a run, stats of the targets only: the guard
        counts the other members by their configuration (monitor-derived ``state``
        for health), and the floor check after a write reads every member's stats."""
        pools = [pool_path(p, self.partition) for p in containers] if containers else None
        only = self._selected if self._running and self.selector is not None else None
        records = []
        watch = []
        for pool, items, stats in self.transport.read(pools, self.partition, self._relevant, only):
            for key in [k for k in self._items if k[0] == pool]:
                del self._items[key]
            for item in items:
                self._items[(pool, item["name"])] = item
            if not items or stats is None:
                continue
            watch.append(pool)
            for item in items:
                records.append(member_record(pool, item, stats.get(full_path_of(item)), self.drain_mode))
        self._pools = watch
        return records

    def _floor_read(self):
        """After a write: the stats of every member of the pools concerned."""
        answer = {}
        records = []
        for pool in self._pools:
            items = dict((full_path_of(i), i) for (cpool, dummy), i in list(self._items.items()) if cpool == pool)
            stats = self.transport.pool_stats(pool, list(items.values()))
            answer[pool] = stats
            for full_path, flat in stats.items():
                item = items.get(full_path)
                if item is None:       # added by somebody else since the plan's read
                    item = item_from_stats(full_path, flat)
                    self._items[(pool, item["name"])] = item
                records.append(member_record(pool, item, flat, self.drain_mode, self._floor_admin(item, flat)))
        self._floor_answer = (time.monotonic(), answer)
        return records

    @staticmethod
    def _floor_admin(item, stats):
        """Stats and this run's knowledge disagree: count the member out of rotation
        (a concurrent disable the stats show, or our own write they do not show yet)."""
        seen = status_admin_state(stats)
        known = admin_state(item.get("session"), item.get("state")) if item.get("session") or item.get("state") \
            else None
        if seen is None or known is None or seen == known:
            return seen or known
        return seen if seen != "enabled" else known

    def _looked_at(self, pool, item, stats):
        """A member record from a look while waiting; a change the stats show is
        confirmed against the member's configuration first."""
        seen = status_admin_state(stats)
        known = admin_state(item.get("session"), item.get("state")) if item.get("session") or item.get("state") \
            else None
        if seen is not None and seen != known:
            fresh = self.transport.member_config(pool, item)
            if fresh is None:
                return gone_record(pool, item)
            item = dict(item, **dict((k, v) for k, v in fresh.items() if v is not None))
            self._items[(pool, item["name"])] = item
            known = admin_state(item.get("session"), item.get("state"))
        return member_record(pool, item, stats, self.drain_mode, known or seen)

    def _relevant(self, pool, items):
        """Stats are read for a pool only if it holds a selected member (all pools
        without a selector); the capacity guard needs the pool's other members too."""
        if self.selector is None:
            return True
        return any(self._selected(pool, item) for item in items)

    def _selected(self, pool, item):
        if self.selector is None:
            return True
        if isinstance(item, Member):
            return self.selector.matches(item)
        return self.selector.matches(Member(pool, item["name"], item.get("address"), port_of(item)))

    # --- planning ----------------------------------------------------------------------

    def target_weight(self, member, requested):
        return None if requested is None else int(requested)

    def new_member(self, container, selector, request):
        """``present`` in a named pool that lacks the member: describe the member to add."""
        if selector.port is None:
            raise InvalidInputError("member %s: not in pool %s; to add it give port (and address, or name of the "
                                    "node)" % (selector.describe(), container))
        name, partition, address, create = self.transport.new_member(selector, self.partition)
        node = split_member_name(name)[0]
        details = dict(full_path="/%s/%s" % (partition, name), partition=partition,
                       node="/%s/%s" % (partition, node), admin_state=None, create=create)
        return Member(container, name, address, selector.port, state="absent", weight=None, sessions=0,
                      health="unknown", details=details)

    def identity(self):
        """The device answering, and its failover state (no request on a standalone
        device whose facts the token cache holds)."""
        facts = self._ha_facts()
        if facts is None:
            return None
        return dict(where=self.transport.where, device=facts.get("name"), state=facts.get("state"))

    def explain_drift(self, before, now):
        if not before or not now:
            return None
        if before.get("where") != now.get("where"):
            return ("F5 failed over: %s is active now and had its own copy of the member" % now["where"])
        return ("%s was not failed over: another client changed it (the GUI, tmsh, other automation)"
                % now["where"])

    # --- writes --------------------------------------------------------------------------

    def prepare(self, changes, request):
        """Before the first write: learn the HA setup (so that nothing is asked
        between a write and its floor check), and on a device in a sync-failover
        group, whether the group is in sync now (a sync would push every pending
        change, not just ours)."""
        group = self._group()
        if group is None or group["auto_sync"] or self._group_was_in_sync is not None:
            return
        status, dummy = self.transport.sync_status()
        self._group_was_in_sync = status == "In Sync"
        if not self._group_was_in_sync:
            self.warn("device group %s: sync status was %s before this change, %s"
                      % (group["name"], status, "so config_sync is skipped (a sync would push the other pending "
                         "changes too); review them and sync the group by hand" if self.config_sync else
                         "so a failover hands traffic to a peer with an older configuration; sync the group"))

    def apply(self, change, request):
        member = change.member
        pool = member.container
        if change.add:
            item = self.transport.add_member(pool, member.details["create"], change.weight)
            self._unsynced = True
            self._items[(pool, item["name"])] = item
            if pool not in self._pools:
                self._pools.append(pool)
            return
        item = self._items.get((pool, member.name)) or dict(
            name=member.name, partition=member.details.get("partition") or self.partition,
            fullPath=member.details.get("full_path") or "/%s/%s" % (self.partition, member.name))
        if change.state == "absent":
            # The member only; the node stays (another pool may use it).
            self.transport.remove_member(pool, item)
            self._unsynced = True
            self._items.pop((pool, member.name), None)
            return
        admin = "enabled" if change.state == "present" else (
            "forced_offline" if self.drain_mode == "forced_offline" else "disabled")
        ratio = None
        if change.state == "present" and change.weight is not None and change.weight != member.weight:
            ratio = change.weight     # only when it changes: an Operator may toggle, not set the ratio
        written = self.transport.set_admin(pool, item, admin, ratio)
        self._unsynced = True
        self._floor_due = self._floor_due or change.takes_out
        self._items[(pool, member.name)] = dict(item, **dict((k, v) for k, v in written.items() if v is not None))

    def force(self, members):
        """``on_timeout: force``: force the members offline (``user-disabled``/``user-down``).

        That is as far as iControl goes: it ends persistence re-entry, but
        connections already open stay until they close (ending them needs
        ``tmsh delete sys connection`` with shell rights)."""
        for member in members:
            if member.details.get("admin_state") == "forced_offline":
                continue
            item = self._items.get(member.key) or dict(name=member.name, fullPath=member.details.get("full_path"))
            written = self.transport.set_admin(member.container, item, "forced_offline")
            self._unsynced = True
            self._items[member.key] = dict(item, **dict((k, v) for k, v in written.items() if v is not None))
        open_conns = sum(m.sessions for m in members)
        return ("forced offline; F5's REST API cannot end open connections, so %d still open will finish on "
                "their own (end them with 'tmsh delete sys connection ss-server-addr ADDRESS' if needed)"
                % open_conns)

    # --- HA ------------------------------------------------------------------------------

    def _ha_facts(self):
        if self._facts is None and self.transport.reads_ha:
            self._facts = self.transport.device() or {}
        return self._facts or None

    def _group(self):
        facts = self._ha_facts()
        return facts.get("group") if facts else None

    def _sync_written(self):
        """Once writes are made: copy them to the device group (config_sync), or say
        that the peer lacks them."""
        if not self._unsynced:
            return
        self._unsynced = False
        group = self._group()
        if group is None or group["auto_sync"]:
            return
        if not self.config_sync:
            if not self._told_unsynced:
                self._told_unsynced = True
                self.warn("device group %s (sync-failover, manual sync): this change is only on %s; a failover "
                          "before the group is synced hands traffic to a peer that lacks it; set config_sync: "
                          "true, or sync the group" % (group["name"], self.transport.where))
            return
        if self._group_was_in_sync is False:
            return
        self.transport.config_sync(group["name"])
        deadline = time.monotonic() + SYNC_TIMEOUT
        while True:
            status, details = self.transport.sync_status()
            if status == "In Sync":
                return
            advice = [line for line in details if "Recommended action" in line]
            if status in ("Disconnected", "Sync Failure") or advice or time.monotonic() >= deadline:
                raise CommandError("device group %s: config sync from %s did not complete (sync status %s%s); "
                                   "the change is made on %s only; check the group's sync status and sync it "
                                   "by hand" % (group["name"], self.transport.where, status,
                                                ": " + one_line(advice[0], 200) if advice else "",
                                                self.transport.where))
            time.sleep(SYNC_POLL)

    def _follow_failover(self):
        """On a device in a sync-failover group: has it become standby?  Then go on
        with the device that is active now.  One request per look."""
        group = self._group()
        if group is None:
            return False
        facts = self.transport.refresh_devices()
        self._facts = facts
        if facts.get("state") in (None, "active"):
            return False
        active = [d for d in facts.get("devices") or [] if d.get("state") == "active" and d.get("address")]
        if not active or self.follow is None:
            self.warn("%s: this device is %s now and no other device of group %s reads active; the wait goes on "
                      "here, but traffic may flow elsewhere; check the pair"
                      % (self.transport.where, facts.get("state"), group["name"]))
            return False
        old = self.transport
        self.transport = self.follow(active[0]["address"])
        old.close()
        self._facts = None
        self.warn("%s: became %s during the wait; following the failover to %s (%s), where the rest of the wait "
                  "runs and whose copy of the member decides"
                  % (old.where, facts.get("state"), active[0]["name"], self.transport.where))
        return True


# --------------------------------------------------------------------------
# The persistence ladder: disabled, then forced offline, then on_timeout
# --------------------------------------------------------------------------

def check_ladder(grace, drain_mode):
    """``force_offline_after`` -> seconds, or None (no ladder)."""
    if grace is None:
        return None
    if float(grace) < 0:
        raise InvalidInputError("force_offline_after %s: must be 0 or more seconds" % grace)
    if drain_mode == "forced_offline":
        raise InvalidInputError("force_offline_after %s: drain_mode forced_offline already forces the members "
                                "offline at once; drop one of them" % grace)
    return float(grace)


def run_escalating(backend, reconnect, request, grace, check_mode=False, clock=time.monotonic):
    """``drained``/``absent`` in steps, for persistence (K13310).

    *Disabled* still admits persistent and active connections, so a drain may
    never finish.  Step 1 drains as ``disabled`` for ``grace`` seconds; step 2
    forces the members still holding sessions offline (only active connections
    finish) and waits for the rest of ``wait_timeout``; then ``on_timeout``
    applies as usual; ``absent`` deletes the members last.  Each step is one run
    of the core (guard, lock, re-assertion included); ``reconnect()`` gives the
    next step its backend.  The result says which step ended the drain:
    ``drain_ended_by`` is ``disabled``, ``forced_offline`` or ``on_timeout``."""
    if check_mode or request.state == "present" or not request.wait:
        return core.run(backend, request, check_mode=check_mode)
    started = clock()
    ladder = _Ladder(request, grace)
    try:
        ladder.add(core.run(backend, _step(request, "drained", "disabled", min(grace, request.wait_timeout), "fail")))
    except WaitTimeoutError as error:
        ladder.add(error.result)
        ladder.pending = [e for e in error.result.get("members") or [] if e.get("sessions", 0) > request.drain_threshold]
    if ladder.pending:
        second = _step(request, "drained", "forced_offline", max(0.0, request.wait_timeout - (clock() - started)),
                       request.on_timeout)
        second.containers = sorted(set(e["container"] for e in ladder.pending))
        second.selectors = [MemberSelector(name=name) for name in sorted(set(e["name"] for e in ladder.pending))]
        ladder.remaining = second.wait_timeout
        try:
            result = core.run(reconnect(), second)
        except WaitTimeoutError as error:
            ladder.add(error.result)
            error.msg = ladder.timeout_msg(error.result)
            error.result = ladder.result(None)
            raise
        ladder.add(result)
        still = [e for e in result.get("members") or [] if e.get("sessions", 0) > request.drain_threshold]
        ended_by = "on_timeout" if still else "forced_offline"
    else:
        ended_by = "disabled"
    if request.state == "absent":
        last = _step(request, "absent", request.options.get("drain_mode") or "disabled", 0.0, "continue")
        last.wait = False
        ladder.add(core.run(reconnect(), last))
    return ladder.result(ended_by)


def _step(request, state, drain_mode, wait_timeout, on_timeout):
    step = shallow_copy(request)
    step.state = state
    step.wait_timeout = float(wait_timeout)
    step.on_timeout = on_timeout
    step.options = dict(request.options, drain_mode=drain_mode)
    return step


class _Ladder(object):
    """The steps' results, merged into one: members as the last step saw them
    (state_before from the first), times and re-assertions added up, every
    warning, and one message saying how the drain went."""

    def __init__(self, request, grace):
        self.request = request
        self.grace = grace
        self.steps = []
        self.pending = []          # the members still open after the grace period
        self.remaining = None      # the wait_timeout the forced-offline step got

    def add(self, result):
        self.steps.append(self._own_timeout(result))

    def _own_timeout(self, result):
        """The forced-offline step's texts name the user's wait_timeout, not what was left of it."""
        if self.remaining is None:
            return result
        theirs, ours = "wait_timeout=%gs" % self.remaining, "wait_timeout=%gs" % self.request.wait_timeout
        result = dict(result)
        result["warnings"] = [w.replace(theirs, ours) for w in result.get("warnings") or []]
        result["msg"] = (result.get("msg") or "").replace(theirs, ours)
        return result

    def result(self, ended_by):
        entries, order = {}, []
        for step in self.steps:
            for entry in step.get("members") or []:
                key = (entry["container"], entry["name"])
                if key not in entries:
                    order.append(key)
                    entries[key] = dict(entry)
                else:
                    kept = entries[key]
                    entries[key] = dict(entry, state_before=kept["state_before"], weight_before=kept["weight_before"])
        result = dict(self.steps[-1])
        result["members"] = [entries[k] for k in order]
        result["changed"] = any(s.get("changed") for s in self.steps)
        result["waited"] = round(sum(float(s.get("waited") or 0) for s in self.steps), 3)
        result["reasserted"] = sum(int(s.get("reasserted") or 0) for s in self.steps)
        warnings = []
        for step in self.steps:
            for text in step.get("warnings") or []:
                if text not in warnings:
                    warnings.append(text)
        result["warnings"] = warnings
        before, after = {}, {}
        for step in self.steps:
            diff = step.get("diff") or {}
            for label, value in (diff.get("before") or {}).items():
                before.setdefault(label, value)
            after.update(diff.get("after") or {})
        result["diff"] = dict(before=before, after=after)
        result["drain_ended_by"] = ended_by
        result["msg"] = self.summary(result, ended_by)
        return result

    def _who(self):
        pools = sorted(set(e["container"] for s in self.steps for e in s.get("members") or []))
        return "member %s in pool %s" % (self.request.describe(), ", ".join(pools))

    def _held(self):
        return ", ".join("%s/%s %d session%s" % (e["container"], e["name"], e["sessions"],
                                                 "" if e["sessions"] == 1 else "s") for e in self.pending)

    def summary(self, result, ended_by):
        verb = self.request.state
        if not self.pending:
            return "%s: %s after %.2fs; the drain ended while disabled" % (self._who(), verb, result["waited"])
        how = {"forced_offline": "which ended the drain",
               "on_timeout": "still not drained at wait_timeout=%gs, so on_timeout ended the wait"
               % self.request.wait_timeout}.get(ended_by, "still not drained")
        return "%s: %s after %.2fs; disabled for %gs, %s still open (persistence), so forced offline, %s" % (
            self._who(), verb, result["waited"], self.grace, self._held(), how)

    def timeout_msg(self, result):
        still = [e for e in result.get("members") or [] if e.get("sessions", 0) > self.request.drain_threshold]
        open_ = ", ".join("%s/%s %d session%s" % (e["container"], e["name"], e["sessions"],
                                                  "" if e["sessions"] == 1 else "s") for e in still)
        return ("member %s: not drained after wait_timeout=%gs, disabled for %gs then forced offline (%s); giving "
                "up, raise wait_timeout or use on_timeout: force"
                % (", ".join(sorted(set(e["name"] for e in still))), self.request.wait_timeout, self.grace, open_))


# --------------------------------------------------------------------------
# Building a backend from the resolved connection options
# --------------------------------------------------------------------------

def connect(conn, partition="Common", drain_mode="disabled", selector=None, session=None, sleep=time.sleep,
            config_sync=False):
    """A backend for ``specs.f5_connection(params)``; the core closes it (and so
    releases the token) however the run ends."""
    check_library(conn.get("transport") or "rest")
    for key, env in (("server", "F5_SERVER"), ("user", "F5_USER"), ("password", "F5_PASSWORD")):
        if not conn.get(key):
            raise InvalidInputError("%s: not set; pass %s (or provider.%s), or set the environment variable %s"
                                    % (key, key, key, env))
    server = str(conn["server"]).strip()
    if server.startswith("[") and server.endswith("]"):
        server = server[1:-1]
    check_partition(partition)
    options = dict(server_port=int(conn.get("server_port") or 443), user=conn["user"], password=conn["password"],
                   validate_certs=conn.get("validate_certs", True) is not False,
                   timeout=float(conn.get("timeout") or 30.0))
    if conn.get("transport") == "soap":
        return F5Backend(SoapTransport(SoapClient(server=server, **options)), partition, drain_mode, selector,
                         config_sync)
    cache = TokenCache() if conn.get("token_cache", True) is not False else None

    def rest(address, own_session=None):
        return RestTransport(RestClient(server=address, session=own_session, sleep=sleep, cache=cache, **options))

    return F5Backend(rest(server, session), partition, drain_mode, selector, config_sync, follow=rest)


__all__ = ["RestClient", "SoapClient", "RestTransport", "SoapTransport", "Transport", "F5Backend", "TokenCache",
           "MemberSelector", "connect", "run_escalating", "missing_library", "pool_path", "url_segment",
           "member_record", "parse_stats", "admin_state", "status_admin_state", "model_state", "LBError"]
