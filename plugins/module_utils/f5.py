# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""F5 BIG-IP LTM pool members for gentle.lb: the wire clients and the backends.

* ``RestClient``: iControl REST on one ``requests.Session``: token login
  (``/mgmt/shared/authn/login``, provider ``tmos``), one re-login when the token
  expired, basic authentication when token login is not available, ``verify=``
  passed on every request (so ``REQUESTS_CA_BUNDLE`` cannot override
  ``validate_certs: false``, requests issue #3829), reads retried with back-off
  on 5xx answers and dropped connections, the token deleted at the end.
* ``SoapClient``: iControl SOAP through ``bigsuds`` (``LocalLB.Pool`` member calls).
* ``F5Backend`` / ``F5SoapBackend``: the core's backend interface (see member.py).

Admin state of a member is the pair of writable fields ``session``/``state``:
enabled = ``user-enabled``/``user-up``, disabled (drain) = ``user-disabled``/``user-up``,
forced offline = ``user-disabled``/``user-down``. What a device *reads back* is
monitor-derived (``monitor-enabled``, ``up``, ``unchecked`` ...), so reads are
mapped (``admin_state``), never compared literally.

No Ansible here: this file runs on the managed node, Python 3.9+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import ipaddress
import json
import os
import re
import ssl
import time
import traceback

from ansible_collections.gentle.lb.plugins.module_utils.member import (
    AuthRefusedError, Backend, CommandError, InvalidInputError, LBError, Member, MissingLibraryError,
    NotFoundError, PermissionDeniedError, Selector, UnreachableError)

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


# --------------------------------------------------------------------------
# Names: partitions, folders, route domains, IPv6 members
# --------------------------------------------------------------------------

# BIG-IP object names: letters, digits and . _ - plus : (IPv6) and % (route domain).
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
    pool = str(pool).strip()
    if pool.startswith("~"):
        pool = pool.replace("~", "/")
    if not pool.startswith("/"):
        check_partition(partition)
        pool = "/%s/%s" % (partition, pool)
    parts = pool.split("/")[1:]
    if len(parts) < 2 or not _PARTITION.fullmatch(parts[0]) or any(not _FOLDER.fullmatch(p) for p in parts[1:-1]):
        raise InvalidInputError("pool %s: not a valid pool path (/Partition/[Folder/]name); check pool" % pool)
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
        address = str(address).strip()
        if parse_ip(address) is None:
            raise InvalidInputError("address %r: not an IPv4 or IPv6 address (optionally with %%<route domain>); "
                                    "give the member's IP address, or use name for a node name" % (address,))
        check_name("address", address)
    node = member_name = None
    if name is not None:
        name = str(name).strip()
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
    """The admin state behind a member's *read* session/state pair.

    Reads are monitor-derived: ``user-up`` reads back as ``up``/``down``/``unchecked``/
    ``checking`` (or ``fqdn-*``) and ``user-enabled`` as ``monitor-enabled`` when a
    monitor applies.  Only ``user-down`` and ``user-disabled`` are read back as written.
    """
    if state == "user-down":
        return "forced_offline"
    if session == "user-disabled":
        return "disabled"
    return "enabled"


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


def member_record(pool, item, stats=None, drain_mode="disabled"):
    """One pool member (a members-collection item plus its stats) -> core Member."""
    stats = stats or {}
    name = item["name"]
    partition = item.get("partition") or "Common"
    full_path = item.get("fullPath") or "/%s/%s" % (partition, name)
    node, port = split_member_name(name)
    address = item.get("address")
    if address is None and parse_ip(node) is not None:
        address = node
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


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------

def tls_hint(where):
    return ("%s: TLS certificate verification failed; set validate_certs: false (or F5_VALIDATE_CERTS=false) "
            "to skip the check, or keep it and point REQUESTS_CA_BUNDLE at a CA bundle that signed the "
            "device certificate" % where)


def _one_line(text, limit=600):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _device_message(resp):
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return _one_line(resp.text or resp.reason or "no body")


def check_library(transport):
    """Raise MissingLibraryError when the transport's library cannot be imported here."""
    missing = missing_library(transport)
    if missing:
        library, traceback, hint = missing
        raise MissingLibraryError("library %s: not installed where this module runs (%s); %s"
                                  % (library, _python_name(), hint), library, traceback)


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
# iControl REST
# --------------------------------------------------------------------------

class RestClient(object):
    """iControl REST over one requests.Session.  Raises the core's LBError subclasses."""

    RETRY_STATUS = (500, 502, 503, 504)

    def __init__(self, server, server_port=443, user=None, password=None, validate_certs=True,
                 timeout=30.0, session=None, sleep=time.sleep, retries=3, backoff=0.25, backoff_max=2.0,
                 scheme="https"):
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
        self.session = session if session is not None else requests.Session()
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
        self.token = None
        self.auth_mode = None       # "token" or "basic"
        self.login_answer = None    # why token login was not used (basic fallback)
        self.sent = 0               # HTTP requests sent

    # --- connection life -------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def login(self):
        body = {"username": self.user, "password": self.password, "loginProviderName": "tmos"}
        resp = self._send("POST", LOGIN_PATH, body=body, retry=True, auth=False)
        if resp.status_code == 200:
            try:
                token = resp.json()["token"]
                value = token.get("token") or token.get("uuid")   # 11.6 returned token.uuid
            except (ValueError, KeyError, TypeError, AttributeError):
                value = None
            if value:
                self.token = value
                self.auth_mode = "token"
                self.session.auth = None
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

    def close(self):
        """Delete the token (always: a device caps live tokens per user), close the session."""
        token, self.token = self.token, None
        try:
            if token:
                try:
                    self.session.request("DELETE", self.base + TOKEN_PATH + token,
                                         headers={"X-F5-Auth-Token": token}, verify=self.verify,
                                         timeout=min(self.timeout, 10.0))
                    self.sent += 1
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
            # Expired (or forgotten) token: log in once more and repeat the request once.
            self.token = None
            self.login()
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
        """One HTTP exchange, retried with back-off for reads on 5xx and dropped connections."""
        url = self.base + path
        data = None if body is None else json.dumps(body)
        attempts = (self.retries + 1) if retry else 1
        delay = self.backoff
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                self.sent += 1
                # verify= on EVERY request: a session-level verify=False loses against
                # REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment (requests #3829).
                resp = self.session.request(method, url, params=params, data=data,
                                            headers=self._headers(auth), verify=self.verify,
                                            timeout=self.timeout, allow_redirects=False)
            except Exception as exc:  # pylint: disable=broad-except
                error = self._transport_error(exc, method, path)
                if error is None and not last:
                    self.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
                    continue
                raise error or self._dropped(exc, method, path, retried=attempt)
            if retry and resp.status_code in self.RETRY_STATUS and not last:
                self.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            return resp

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
                                    % (self.where, method, path, _one_line(exc)))
        raise exc

    def _dropped(self, exc, method, path, retried):
        if method == "GET":
            return UnreachableError("%s: connection lost during GET %s (%s), also after %d retries; check the "
                                    "device and try again" % (self.where, path, _one_line(exc, 200), retried))
        return UnreachableError("%s: connection lost during %s %s (%s); the change may or may not have been "
                                "applied; run the task again (it is idempotent)"
                                % (self.where, method, path, _one_line(exc, 200)))

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
                                                                  _one_line(resp.text, 200)))
        message = _device_message(resp)
        if status == 401:
            if self.auth_mode == "basic":
                hint = ("token login answered %s, so basic authentication was used, which works for local "
                        "users only" % self.login_answer)
                raise AuthRefusedError("%s: user %s was refused (%s); check user and password; %s"
                                       % (self.where, self.user, _one_line(message, 200), hint))
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
        if status == 400:
            # The device's body, verbatim.
            raise CommandError("%s: %s refused %s %s with 400: %s"
                               % (what, self.where, method, path, (resp.text or "").strip()))
        raise CommandError("%s: %s answered %d to %s %s (%s); try again later"
                           % (what, self.where, status, method, path, message))


def _ssl_reason(exc):
    text = str(exc)
    match = re.search(r"certificate verify failed: ([^()'\"]+)", text)
    if match:
        return "certificate verify failed: %s" % match.group(1).strip()
    return _one_line(text, 200)


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
    return _one_line(text, 200)


# --------------------------------------------------------------------------
# The REST backend
# --------------------------------------------------------------------------

class F5Backend(Backend):
    """The core's backend over iControl REST.

    Reads a pool with two requests whatever its size: the members collection
    (config, admin state) and the members ``/stats`` (connections, sessions,
    availability).  With no pool given, one request lists every pool of the
    partition with its members (``expandSubcollections``), then stats are read
    only for the pools that hold the member.  Waiting polls only the stats.
    """

    kind = "F5"
    container_label = "pool"
    member_label = "member"
    removes_member = True   # absent deletes the member: the core drains and waits first
    can_force = True        # forced offline (open connections still finish: see force())
    default_poll_interval = 0.5

    def __init__(self, client, partition="Common", drain_mode="disabled", selector=None):
        super(F5Backend, self).__init__()
        self.client = client
        self.partition = check_partition(partition)
        if drain_mode not in DRAIN_MODES:
            raise InvalidInputError("drain_mode %s: not one of %s" % (drain_mode, ", ".join(DRAIN_MODES)))
        self.drain_mode = drain_mode
        self.selector = selector
        self._config = {}       # (pool, member name) -> members-collection item
        self._watch = []        # pools polled while waiting
        self._nodes = None

    def close(self):
        self.client.close()

    def lock_key(self):
        return "f5 %s" % self.client.where

    # --- the core's interface -----------------------------------------------

    def validate(self, request):
        drain_mode = request.options.get("drain_mode", self.drain_mode) or "disabled"
        if drain_mode not in DRAIN_MODES:
            raise InvalidInputError("drain_mode %s: not one of %s" % (drain_mode, ", ".join(DRAIN_MODES)))
        self.selector = request        # any of its selectors
        self.drain_mode = drain_mode
        for pool in request.containers or []:
            pool_path(pool, self.partition)
        if request.weight is not None and not 1 <= int(request.weight) <= MAX_RATIO:
            raise InvalidInputError("weight %s: F5 ratio must be between 1 and %d; check weight"
                                    % (request.weight, MAX_RATIO))

    def read(self, containers):
        pools = self._read_config(containers)
        records = []
        watch = []
        for pool, items in pools:
            wanted = self._relevant(pool, items)
            if not items or not wanted:
                continue
            watch.append(pool)
            stats = parse_stats(self.client.get(pool_url(pool) + "/members/stats", what="pool %s" % pool))
            for item in items:
                records.append(member_record(pool, item, stats.get(_full_path(item)), self.drain_mode))
        self._watch = watch
        return records

    def poll(self, containers):
        """While waiting: only stats, merged with the config as last read (and as
        this run wrote it), for the pools that hold targets.  A pool with few
        targets is polled member by member (``.../members/<member>/stats``: a small
        answer however big the pool); otherwise its ``/members/stats`` at once."""
        records = []
        for pool in self._watch:
            items = [item for (cpool, dummy), item in list(self._config.items()) if cpool == pool]
            targets = [item for item in items if self._selected(pool, item)] if self.selector is not None else items
            if len(targets) <= PER_MEMBER_POLL:
                stats = {}
                for item in targets:
                    try:
                        stats.update(parse_stats(self.client.get(member_url(pool, _full_path(item)) + "/stats",
                                                                 what="member %s in pool %s" % (item["name"], pool))))
                    except NotFoundError:
                        pass    # deleted meanwhile: reported as gone
            else:
                targets = items
                stats = parse_stats(self.client.get(pool_url(pool) + "/members/stats", what="pool %s" % pool))
            for item in targets:
                found = stats.get(_full_path(item))
                if found is None:
                    records.append(gone_record(pool, item))
                else:
                    records.append(member_record(pool, item, found, self.drain_mode))
        return records

    def target_weight(self, member, requested):
        return None if requested is None else int(requested)

    def new_member(self, container, selector, request):
        """``present`` in a named pool that lacks the member: describe the member to add."""
        if selector.port is None:
            raise InvalidInputError("member %s: not in pool %s; to add it give port (and address, or name of the "
                                    "node)" % (selector.describe(), container))
        node_name, node_partition, address = self._node_for(selector)
        name = join_member_name(node_name, selector.port)
        details = dict(full_path="/%s/%s" % (node_partition, name), partition=node_partition,
                       node="/%s/%s" % (node_partition, node_name), admin_state=None,
                       create=dict(name=name, partition=node_partition, address=address))
        return Member(container, name, address, selector.port, state="absent", weight=None, sessions=0,
                      health="unknown", details=details)

    def apply(self, change, request):
        member = change.member
        pool = member.container
        what = "member %s in pool %s" % (member.name, pool)
        if change.add:
            create = member.details["create"]
            body = dict(name=create["name"], partition=create["partition"])
            if create["address"]:
                body["address"] = create["address"]   # raw, '%2' and all
            body.update(WRITE_FIELDS["enabled"])
            if change.weight is not None:
                body["ratio"] = int(change.weight)
            item = self.client.request("POST", pool_url(pool) + "/members", body=body, what=what)
            self._remember(pool, item or dict(body, fullPath=member.details["full_path"]))
            return
        full_path = member.details.get("full_path") or "/%s/%s" % (self.partition, member.name)
        url = member_url(pool, full_path)
        if change.state == "absent":
            # The member only; the node stays (another pool may use it).
            self.client.request("DELETE", url, what=what)
            self._config.pop((pool, member.name), None)
            return
        admin = "enabled" if change.state == "present" else (
            "forced_offline" if self.drain_mode == "forced_offline" else "disabled")
        body = dict(WRITE_FIELDS[admin])
        if change.state == "present" and change.weight is not None:
            body["ratio"] = int(change.weight)
        self.client.request("PATCH", url, body=body, what=what)
        item = self._config.get((pool, member.name))
        if item is not None:
            item.update(body)   # as written; the next full read maps the monitor view

    def force(self, members):
        """``on_timeout: force``: force the members offline (``user-disabled``/``user-down``).

        That is as far as iControl REST's ``ltm`` API goes: it ends persistence
        re-entry, but connections already open stay until they close (ending them
        needs ``tmsh delete sys connection`` with shell rights)."""
        for member in members:
            if member.details.get("admin_state") == "forced_offline":
                continue
            full_path = member.details.get("full_path") or "/%s/%s" % (self.partition, member.name)
            self.client.request("PATCH", member_url(member.container, full_path),
                                body=dict(WRITE_FIELDS["forced_offline"]),
                                what="member %s in pool %s" % (member.name, member.container))
            item = self._config.get(member.key)
            if item is not None:
                item.update(WRITE_FIELDS["forced_offline"])
        open_conns = sum(m.sessions for m in members)
        return ("forced offline; F5's REST API cannot end open connections, so %d still open will finish on "
                "their own (end them with 'tmsh delete sys connection ss-server-addr ADDRESS' if needed)"
                % open_conns)

    # --- reading ---------------------------------------------------------------

    def _read_config(self, containers):
        """[(pool full path, [member items])] for the named pools, or for every
        pool of the partition (one request, members expanded)."""
        out = []
        if containers:
            for pool in containers:
                path = pool_path(pool, self.partition)
                items = self.client.collection(pool_url(path) + "/members",
                                               params={"$select": MEMBER_FIELDS}, what="pool %s" % path)
                out.append((path, items))
        else:
            try:
                pools = self.client.collection(POOL_PATH, params={
                    "expandSubcollections": "true", "$filter": "partition eq %s" % self.partition},
                    what="partition %s" % self.partition)
            except NotFoundError as error:
                raise NotFoundError("partition %s: not found on %s (%s); check partition"
                                    % (self.partition, self.client.where, getattr(error, "device_message", "")))
            for pool in pools:
                if pool.get("partition", self.partition) != self.partition:
                    continue
                path = pool.get("fullPath") or "/%s/%s" % (self.partition, pool["name"])
                items = ((pool.get("membersReference") or {}).get("items")) or []
                out.append((path, items))
        for path, items in out:
            for item in items:
                self._config[(path, item["name"])] = item
        return out

    def _relevant(self, pool, items):
        """Stats are read for a pool only if it holds a selected member (all pools
        without a selector); the capacity guard needs the pool's other members too."""
        if self.selector is None:
            return True
        return any(self._selected(pool, item) for item in items)

    def _selected(self, pool, item):
        return self.selector.matches(Member(pool, item["name"], item.get("address"), _port_of(item)))

    def _remember(self, pool, item):
        self._config[(pool, item["name"])] = item
        if pool not in self._watch:
            self._watch.append(pool)

    def _node_for(self, selector):
        """(node name, node partition, address to send or None) for a new member:
        an existing node of that address is reused, whatever its name."""
        nodes = self._read_nodes()
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
                return node["name"], node.get("partition") or self.partition, None
            return wanted or selector.address, self.partition, selector.address
        named = [n for n in nodes if n["name"] == wanted]
        if named:
            mine = [n for n in named if n.get("partition") == self.partition] or named
            return wanted, mine[0].get("partition") or self.partition, None
        if parse_ip(wanted) is not None:
            return wanted, self.partition, wanted
        raise InvalidInputError("node %s: not found in partition %s, so a member on it cannot be added; give "
                                "address to create the node" % (wanted, self.partition))

    def _read_nodes(self):
        if self._nodes is None:
            self._nodes = self.client.collection(NODE_PATH, params={"$select": "name,partition,fullPath,address"},
                                                 what="nodes")
        return self._nodes


def _full_path(item):
    return item.get("fullPath") or "/%s/%s" % (item.get("partition") or "Common", item["name"])


def _port_of(item):
    try:
        return split_member_name(item["name"])[1]
    except ValueError:
        return None


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
SOAP_STATS = {"STATISTIC_SERVER_SIDE_CURRENT_CONNECTIONS": "serverside.curConns",
              "STATISTIC_CURRENT_SESSIONS": "curSessions"}


def soap_u64(value):
    """iControl ``Common.ULong64 {high, low}`` -> int."""
    if isinstance(value, dict):
        return (int(value.get("high") or 0) << 32) | int(value.get("low") or 0)
    return int(value or 0)


def soap_stats(entry):
    """One ``MemberStatisticEntry`` -> (node full path, port, {stat name: value})."""
    flat = {}
    for stat in entry.get("statistics") or []:
        key = SOAP_STATS.get(stat.get("type"))
        if key:
            flat[key] = soap_u64(stat.get("value"))
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
        self.api = _make_bigip(bigsuds, server, int(server_port), user, password, bool(validate_certs),
                               float(timeout))
        self.user = user
        self.sent = 0

    def close(self):
        pass   # SOAP uses basic authentication: no token to delete

    def call(self, method, *args):
        self.sent += 1
        try:
            return getattr(self.api.LocalLB.Pool, method)(*args)
        except self.bigsuds.ServerError as exc:
            text = _fault_text(exc)
            pools = ", ".join(args[0]) if args and isinstance(args[0], list) else ""
            what = "pool %s" % pools if pools else self.where
            if "was not found" in text:
                raise NotFoundError("%s: not found on %s (%s); check the name and the partition"
                                    % (what, self.where, text))
            raise CommandError("%s: %s refused LocalLB.Pool.%s: %s" % (what, self.where, method, text))
        except self.bigsuds.OperationFailed as exc:
            raise self._connection_error(exc)
        except (OSError, ssl.SSLError) as exc:
            raise self._connection_error(exc)

    def _connection_error(self, exc):
        text = _one_line(exc, 300)
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
    return _one_line(match.group(1) if match else text, 400)


def _tls_context(verify):
    if not verify:
        return ssl._create_unverified_context()  # pylint: disable=protected-access
    cafile = None
    for var in CA_ENV:
        if os.environ.get(var):
            cafile = os.environ[var]
            break
    return ssl.create_default_context(cafile=cafile)


def _make_bigip(bigsuds, server, port, user, password, verify, timeout):
    """A bigsuds.BIGIP whose suds clients use our TLS context (REQUESTS_CA_BUNDLE /
    CURL_CA_BUNDLE honoured as for REST) and send credentials with the first request."""
    from suds.client import Client  # pylint: disable=import-error
    from suds.transport.https import HttpAuthenticated  # pylint: disable=import-error
    from suds.xsd.doctor import Import, ImportDoctor  # pylint: disable=import-error
    try:
        from urllib.request import HTTPSHandler
    except ImportError:  # pragma: no cover
        from urllib2 import HTTPSHandler  # type: ignore

    context = _tls_context(verify)
    auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")

    class Transport(HttpAuthenticated):
        def u2handlers(self):
            handlers = HttpAuthenticated.u2handlers(self)
            handlers.append(HTTPSHandler(context=context))
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


class F5SoapBackend(F5Backend):
    """The same backend over iControl SOAP (``LocalLB.Pool``), for old devices.

    A whole read is five calls however many pools and members: ``get_member_v2``,
    then session, monitor and object status and ``get_all_member_statistics`` for
    the pools that hold the member.  ``weight`` (ratio) is REST only.
    """

    def validate(self, request):
        super(F5SoapBackend, self).validate(request)
        if request.weight is not None:
            raise InvalidInputError("weight %s: setting the ratio needs transport: rest; drop weight or use "
                                    "transport: rest" % request.weight)

    def read(self, containers):
        call = self.client.call
        if containers:
            pools = [pool_path(p, self.partition) for p in containers]
        else:
            prefix = "/%s/" % self.partition
            pools = [p for p in call("get_list") if p.startswith(prefix)]
        if not pools:
            return []
        members = call("get_member_v2", pools)
        rows = [(pool, mem) for pool, mem in zip(pools, members)
                if mem and self._relevant_soap(pool, mem)]
        self._watch = [pool for pool, dummy in rows]
        if not rows:
            return []
        names = [pool for pool, dummy in rows]
        lists = [mem for dummy, mem in rows]
        sessions = call("get_member_session_status", names, lists)
        monitors = call("get_member_monitor_status", names, lists)
        statuses = call("get_member_object_status", names, lists)
        stats = call("get_all_member_statistics", names)
        records = []
        for index, (pool, mem) in enumerate(rows):
            by_member = {}
            for entry in (stats[index] or {}).get("statistics") or []:
                node_path, port, flat = soap_stats(entry)
                by_member[(node_path, port)] = flat
            for pos, addr in enumerate(mem):
                item = soap_item(addr["address"], int(addr["port"]), sessions[index][pos], monitors[index][pos])
                self._config[(pool, item["name"])] = item
                flat = dict(by_member.get((addr["address"], int(addr["port"]))) or {})
                status = statuses[index][pos] or {}
                flat["status.availabilityState"] = AVAILABILITY.get(status.get("availability_status"), "unknown")
                flat["status.enabledState"] = ENABLED_STATUS.get(status.get("enabled_status"))
                flat["status.statusReason"] = status.get("status_description")
                item["availability"] = flat["status.availabilityState"]
                item["enabled_status"] = flat["status.enabledState"]
                records.append(member_record(pool, item, flat, self.drain_mode))
        return records

    def poll(self, containers):
        """While waiting: ``get_member_statistics`` and ``get_member_object_status``,
        one call each for every watched pool together."""
        pools = list(self._watch)
        if not pools:
            return []
        lists = []
        for pool in pools:
            lists.append([{"address": item["node_path"], "port": item["port"]}
                          for (cpool, dummy), item in self._config.items() if cpool == pool])
        stats = self.client.call("get_member_statistics", pools, lists)
        statuses = self.client.call("get_member_object_status", pools, lists)
        records = []
        for index, pool in enumerate(pools):
            by_member = {}
            for entry in (stats[index] or {}).get("statistics") or []:
                node_path, port, flat = soap_stats(entry)
                by_member[(node_path, port)] = flat
            for pos, addr in enumerate(lists[index]):
                item = self._config[(pool, soap_item(addr["address"], addr["port"])["name"])]
                flat = dict(by_member.get((item["node_path"], item["port"])) or {})
                status = statuses[index][pos] or {}
                flat["status.availabilityState"] = AVAILABILITY.get(status.get("availability_status"), "unknown")
                flat["status.enabledState"] = ENABLED_STATUS.get(status.get("enabled_status"))
                flat["status.statusReason"] = status.get("status_description")
                records.append(member_record(pool, item, flat, self.drain_mode))
        return records

    def _relevant_soap(self, pool, members):
        if self.selector is None:
            return True
        for addr in members:
            item = soap_item(addr["address"], int(addr["port"]))
            if self.selector.matches(Member(pool, item["name"], item["address"], item["port"])):
                return True
        return False

    def new_member(self, container, selector, request):
        if selector.port is None:
            raise InvalidInputError("member %s: not in pool %s; to add it give port (and address, or name of the "
                                    "node)" % (selector.describe(), container))
        # add_member_v2 takes a node *name*: an existing node, or an IP address the
        # device then creates a node for (a new named node needs transport: rest).
        node_name = selector.node_name or selector.address
        name = join_member_name(node_name, selector.port)
        node_path = "/%s/%s" % (self.partition, node_name)
        details = dict(full_path="/%s/%s" % (self.partition, name), partition=self.partition, node=node_path,
                       admin_state=None, create=dict(node_path=node_path, port=selector.port))
        address = selector.address or (node_name if parse_ip(node_name) is not None else None)
        return Member(container, name, address, selector.port, state="absent", weight=None, sessions=0,
                      health="unknown", details=details)

    def apply(self, change, request):
        member = change.member
        pool = member.container
        if change.add:
            create = member.details["create"]
            target = {"address": create["node_path"], "port": int(create["port"])}
            self.client.call("add_member_v2", [pool], [[target]])
            item = soap_item(create["node_path"], int(create["port"]))
            self._config[(pool, item["name"])] = item
            if pool not in self._watch:
                self._watch.append(pool)
            self._write(pool, item, "enabled")
            return
        item = self._config.get((pool, member.name))
        if item is None:
            raise NotFoundError("member %s in pool %s: disappeared while this task ran; run it again"
                                % (member.name, pool))
        if change.state == "absent":
            target = {"address": item["node_path"], "port": item["port"]}
            self.client.call("remove_member_v2", [pool], [[target]])   # the node stays
            self._config.pop((pool, member.name), None)
            return
        admin = "enabled" if change.state == "present" else (
            "forced_offline" if self.drain_mode == "forced_offline" else "disabled")
        self._write(pool, item, admin)

    def _write(self, pool, item, admin):
        """Both halves of the admin state, always: session, then monitor state."""
        target = [[{"address": item["node_path"], "port": item["port"]}]]
        session = "STATE_ENABLED" if admin == "enabled" else "STATE_DISABLED"
        monitor = "STATE_DISABLED" if admin == "forced_offline" else "STATE_ENABLED"
        self.client.call("set_member_session_enabled_state", [pool], target, [[session]])
        self.client.call("set_member_monitor_state", [pool], target, [[monitor]])
        item.update(WRITE_FIELDS[admin])

    def force(self, members):
        for member in members:
            item = self._config.get(member.key)
            if item is not None and member.details.get("admin_state") != "forced_offline":
                self._write(member.container, item, "forced_offline")
        return ("forced offline; iControl cannot end open connections, so %d still open will finish on their own"
                % sum(m.sessions for m in members))


# --------------------------------------------------------------------------
# Building a backend from the resolved connection options
# --------------------------------------------------------------------------

def connect(conn, partition="Common", drain_mode="disabled", selector=None, session=None, sleep=time.sleep):
    """A backend for ``specs.f5_connection(params)``; the core closes it (and so
    deletes the token) however the run ends."""
    check_library(conn.get("transport") or "rest")
    for key, env in (("server", "F5_SERVER"), ("user", "F5_USER"), ("password", "F5_PASSWORD")):
        if not conn.get(key):
            raise InvalidInputError("%s: not set; pass %s (or provider.%s), or set the environment variable %s"
                                    % (key, key, key, env))
    server = str(conn["server"]).strip()
    if server.startswith("[") and server.endswith("]"):
        server = server[1:-1]
    check_partition(partition)
    options = dict(server=server, server_port=int(conn.get("server_port") or 443), user=conn["user"],
                   password=conn["password"], validate_certs=conn.get("validate_certs", True) is not False,
                   timeout=float(conn.get("timeout") or 30.0))
    if conn.get("transport") == "soap":
        return F5SoapBackend(SoapClient(**options), partition, drain_mode, selector)
    return F5Backend(RestClient(session=session, sleep=sleep, **options), partition, drain_mode, selector)


__all__ = ["RestClient", "SoapClient", "F5Backend", "F5SoapBackend", "MemberSelector", "connect",
           "missing_library", "pool_path", "url_segment", "member_record", "parse_stats", "admin_state",
           "model_state", "LBError"]
