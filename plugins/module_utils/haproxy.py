# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy for gentle.lb: the runtime API client (unix and TCP stats sockets),
the statistics page client (its admin form), their parsers, and
``HAProxyBackend``, the backend the core (``member.py``) drives.

Wire facts this file relies on (checked against HAProxy 2.6 and 3.0, see
tests/unit/fixtures/haproxy/):

* One command per connection.  Every command is sent as
  ``set severity-output number; <command>``: errors then start with ``[3]:``
  (``[0]``-``[3]`` are errors), so they are told apart from data reliably.
  HAProxy 2.6 prints "Unknown command" at severity 6, so that text is checked too.
* The administrative state comes from ``show servers state`` (a bitmask), never
  from the ``status`` column of ``show stat``: a drained server whose check
  fails shows plain ``DOWN`` there.  ``show stat`` gives the counters
  (``scur``, ``qcur``), the health view and the backup flag.
* Names are validated against HAProxy's own alphabet before any I/O: ``;`` and
  newlines separate commands on the runtime API, so a name such as
  ``web1;disable server app/web2`` must never reach the socket.

Never imports ansible.module_utils.basic; Python 3.9 compatible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import errno
import ipaddress
import os
import re
import socket as socketlib
import ssl
import time

from http import client as httplib
from urllib.parse import unquote, urlencode, urlsplit

from ansible_collections.gentle.lb.plugins.module_utils.member import (
    AuthRefusedError,
    Backend,
    CommandError,
    InvalidInputError,
    LBError,
    Member,
    NotFoundError,
    PermissionDeniedError,
    Selector,
    UnreachableError,
)


DEFAULT_SOCKET = "/run/haproxy/admin.sock"

# HAProxy's proxy and server name alphabet (cfgparse: "character '%c' is not
# permitted in ... name").  Always used with fullmatch: "$" would also match
# before a final newline, and a newline separates commands on the runtime API.
NAME_RE = re.compile(r"[A-Za-z0-9._:-]+")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9._-]+")
SEVERITY_PREFIX = "set severity-output number; "
_SEVERITY_RE = re.compile(r"^\[(\d)\]: ?(.*)$")

# srv_admin_state bits (include/haproxy/server-t.h)
FMAINT = 0x01   # forced maintenance (set server ... state maint / disable server)
IMAINT = 0x02   # maintenance inherited from a tracked server
CMAINT = 0x04   # "disabled" in the configuration (starts with FMAINT as well)
FDRAIN = 0x08   # forced drain (set server ... state drain)
IDRAIN = 0x10   # drain inherited from a tracked server
RMAINT = 0x20   # maintenance because DNS resolution failed
HMAINT = 0x40   # FQDN set from the runtime API (informational)
ANY_MAINT = FMAINT | IMAINT | RMAINT     # SRV_ADMF_MAINT = 0x23
ANY_DRAIN = FDRAIN | IDRAIN              # SRV_ADMF_DRAIN = 0x18
ADMIN_FLAGS = (
    (FMAINT, "FMAINT"), (IMAINT, "IMAINT"), (CMAINT, "CMAINT"), (FDRAIN, "FDRAIN"),
    (IDRAIN, "IDRAIN"), (RMAINT, "RMAINT"), (HMAINT, "HMAINT"),
)

OP_STATES = {0: "stopped", 1: "starting", 2: "running", 3: "stopping"}

# srv_check_state bits
CHK_CONFIGURED = 0x02
CHK_ENABLED = 0x04

STATE_COMMANDS = {"present": "ready", "drained": "drain", "absent": "maint"}

# Stats page admin form result codes (location: <uri>;st=<CODE>)
STATS_CODES = {
    "DONE": "the change was applied",
    "PART": "only part of the change was applied",
    "NONE": "nothing was changed",
    "ERRP": "the backend, server or action is unknown",
    "EXCD": "the request was too large",
    "DENY": "changes are not allowed on this stats page",
    "IVAL": "the request was invalid",
    "UNKN": "an unexpected error occurred",
}


# --------------------------------------------------------------------------
# Input validation (no I/O)
# --------------------------------------------------------------------------

def validate_name(kind, value):
    """Refuse anything outside HAProxy's name alphabet, before any I/O."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidInputError(
            "%s %r: not a valid HAProxy name (only letters, digits and . _ : - are allowed); "
            "use the name exactly as in haproxy.cfg" % (kind, value))
    return value


def parse_weight(value):
    """``value`` as ("absolute", n) or ("percent", p); None stays None.

    HAProxy accepts 0-256, or a percentage of the server's initial weight."""
    if value is None:
        return None
    text = value if isinstance(value, str) else None
    if isinstance(value, bool):
        text = None
    elif isinstance(value, int):
        text = str(value)
    if text is not None:
        text = text.strip()
        match = re.fullmatch(r"(\d+)(%?)", text)
        if match:
            number = int(match.group(1))
            if match.group(2):
                return ("percent", number)
            if number <= 256:
                return ("absolute", number)
    raise InvalidInputError(
        "weight %r: out of range; HAProxy accepts an integer from 0 to 256, or a percentage of "
        "the server's initial weight such as '50%%'" % (value,))


def resolve_weight(weight, initial):
    """The absolute weight HAProxy will set, rounding as it does
    (server_parse_weight_change_request: ``iweight * pct / 100``, capped at 256)."""
    if weight is None:
        return None
    kind, number = weight
    if kind == "absolute":
        return number
    if initial is None:
        return None
    return min(256, initial * min(number, 25600) // 100)


def parse_address(value):
    """``ip``, ``ip:port``, ``[ipv6]:port``, ``ipv6`` or ``host[:port]`` -> (address, port)."""
    if value is None:
        return None, None
    text = str(value)
    host, port = text, None
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", text)
    if match:
        host, port = match.group(1), match.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        if not HOSTNAME_RE.fullmatch(host) or ":" in host:
            raise InvalidInputError(
                "address %r: not an IP address, IP:port or host name; write it as 192.0.2.10, "
                "192.0.2.10:8080 or [2001:db8::1]:8080" % (value,))
        address = host
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidInputError("address %r: port %r is not a number between 1 and 65535" % (value, port))
        port = int(port)
    return address, port


def _same_address(wanted, address):
    if address is None:
        return False
    if wanted == address:
        return True
    try:
        return ipaddress.ip_address(wanted) == ipaddress.ip_address(address)
    except ValueError:
        return False


class ServerSelector(Selector):
    """By name, or by configured address (the IP HAProxy uses, or the FQDN
    written in haproxy.cfg), optionally with a port."""

    def matches(self, member):
        if self.name is not None and member.name != self.name:
            return False
        if self.address is not None:
            fqdn = member.details.get("fqdn")
            if not (_same_address(self.address, member.address) or self.address == fqdn):
                return False
        if self.port is not None and member.port != self.port:
            return False
        return True


def selector_from(server=None, address=None):
    if server is not None:
        validate_name("server", server)
    host, port = parse_address(address)
    return ServerSelector(name=server, address=host, port=port)


def selectors_from(servers=None, addresses=None):
    """One selector per server name / address (lists of the same length are paired)."""
    if servers is not None and not isinstance(servers, list):
        servers = [servers]
    if addresses is not None and not isinstance(addresses, list):
        addresses = [addresses]
    servers, addresses = servers or [], addresses or []
    if servers and addresses and len(servers) != len(addresses):
        raise InvalidInputError("server and address: %d and %d values; give one of them, or both with the "
                                "same number of values (each pair names one server)"
                                % (len(servers), len(addresses)))
    if servers and addresses:
        pairs = list(zip(servers, addresses))
    else:
        pairs = [(name, None) for name in servers] + [(None, address) for address in addresses]
    return [selector_from(name, address) for name, address in pairs]


# --------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------

def parse_show_stat(text):
    """``show stat`` / ``;csv`` output -> list of dicts keyed by header name.

    Columns are looked up by name: HAProxy adds columns between versions
    (3.0 has ``srid`` before ``-`` and many more after it)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise CommandError("show stat: HAProxy's reply is not CSV statistics (%r); "
                           "check that this is an HAProxy stats socket or page" % text[:80])
    header = lines[0][2:].rstrip(",").split(",")
    rows = []
    for line in lines[1:]:
        values = line.rstrip(",").split(",")
        rows.append(dict(zip(header, values)))
    return rows


def parse_servers_state(text):
    """``show servers state`` (format version 1) -> list of dicts keyed by
    the header names, with the numeric columns as ints."""
    lines = text.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or lines[0].strip() != "1":
        raise CommandError("show servers state: unsupported reply (%r); only format version 1 "
                           "(HAProxy 1.6 and later) is understood" % text[:80])
    header = None
    rows = []
    for line in lines[1:]:
        if line.startswith("# "):
            header = line[2:].split()
            continue
        if not line.strip() or header is None:
            continue
        values = line.split()
        row = dict(zip(header, values))
        for key in ("be_id", "srv_id", "srv_op_state", "srv_admin_state", "srv_uweight",
                    "srv_iweight", "srv_check_state", "srv_check_status", "srv_check_result",
                    "srv_check_health", "srv_port", "srv_agent_state"):
            if key in row:
                try:
                    row[key] = int(row[key])
                except ValueError:
                    pass
        rows.append(row)
    if header is None:
        raise CommandError("show servers state: no header line in HAProxy's reply (%r)" % text[:80])
    return rows


def parse_info(text):
    """``show info`` ("Name: value" lines) -> dict."""
    info = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            info[name.strip()] = value.strip()
    return info


def admin_flags(value):
    """Names of the admin-state bits set in ``value``."""
    if value is None:
        return []
    return [name for bit, name in ADMIN_FLAGS if value & bit]


def admin_to_state(value):
    """The state model's view of a ``srv_admin_state`` bitmask.

    Any maintenance bit (0x23: forced, inherited, DNS) -> absent; else any
    drain bit (0x18) -> drained; else present.  CMAINT (0x04, ``disabled`` in
    the configuration) alone is not maintenance: HAProxy also sets FMAINT for
    it, and ``state ready`` clears FMAINT and leaves the server running with
    0x04 still set."""
    if value & ANY_MAINT:
        return "absent"
    if value & ANY_DRAIN:
        return "drained"
    return "present"


def status_to_state(status):
    """The state as far as the ``status`` column can tell (stats page only):
    a drained server whose check fails shows ``DOWN``, so reads as present."""
    if status.startswith("MAINT"):
        return "absent"
    if status.startswith("DRAIN"):
        return "drained"
    return "present"


def status_to_health(status, checked):
    """HAProxy's health view from the ``status`` column.

    ``up`` and ``unknown`` (no check) are usable.  ``UP 1/2`` (health below
    its maximum, as right after leaving maintenance until a check passes)
    is ``going_down``; ``DOWN 1/2`` is ``going_up``; both are not usable yet."""
    if status == "no check":
        return "unknown"
    if status.startswith("MAINT") or status.startswith("DOWN"):
        return "going_up" if re.match(r"^DOWN \d+/\d+$", status) else "down"
    if status.startswith("NOLB"):
        return "nolb"
    if re.match(r"^(UP|DRAIN) \d+/\d+$", status):
        return "going_down"
    if status in ("UP", "DRAIN", "DRAIN (agent)"):
        return "up" if checked else "unknown"
    return "down"


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _check_status(value):
    """``* L7OK`` means a check is running right now; the result is L7OK."""
    value = (value or "").lstrip("* ").strip()
    return value or None


def server_rows(state_rows, stat_rows):
    """Join ``show servers state`` with ``show stat`` (by backend and server
    name) into one record per server."""
    stats = {}
    for row in stat_rows:
        if row.get("type") == "2":
            stats[(row.get("pxname"), row.get("svname"))] = row
    servers = []
    for row in state_rows:
        key = (row["be_name"], row["srv_name"])
        stat = stats.get(key, {})
        admin = row["srv_admin_state"]
        status = stat.get("status", "")
        checked = bool(row.get("srv_check_state", 0) & CHK_CONFIGURED) or bool(stat.get("tracked"))
        fqdn = row.get("srv_fqdn")
        servers.append(dict(
            backend=row["be_name"], name=row["srv_name"], address=row["srv_addr"],
            port=_int(row.get("srv_port"), None), fqdn=None if fqdn in (None, "-") else fqdn,
            admin_state=admin, state=admin_to_state(admin),
            weight=row["srv_uweight"], initial_weight=row["srv_iweight"],
            sessions=_int(stat.get("scur")), queued=_int(stat.get("qcur")),
            status=status or None, health=status_to_health(status, checked) if status else "unknown",
            check_status=_check_status(stat.get("check_status")), checked=checked,
            backup=stat.get("bck") == "1", tracks=stat.get("tracked") or None,
            operational_state=OP_STATES.get(row["srv_op_state"], str(row["srv_op_state"])),
        ))
    return servers


def csv_server_rows(stat_rows):
    """Server records from the stats page CSV alone (no admin bitmask there)."""
    servers = []
    for row in stat_rows:
        if row.get("type") != "2":
            continue
        status = row.get("status", "")
        checked = bool(row.get("check_status")) or bool(row.get("tracked"))
        weight = row.get("uweight") if row.get("uweight") not in (None, "") else row.get("weight")
        address, port = None, None
        if row.get("addr"):
            try:
                address, port = parse_address(row["addr"])
            except InvalidInputError:
                address = row["addr"]
        servers.append(dict(
            backend=row["pxname"], name=row["svname"], address=address, port=port, fqdn=None,
            admin_state=None, state=status_to_state(status),
            weight=_int(weight, None), initial_weight=None,
            sessions=_int(row.get("scur")), queued=_int(row.get("qcur")),
            status=status or None, health=status_to_health(status, checked),
            check_status=_check_status(row.get("check_status")), checked=checked,
            backup=row.get("bck") == "1", tracks=row.get("tracked") or None,
            operational_state=None,
        ))
    return servers


def backends_in_csv(stat_rows):
    return [row["pxname"] for row in stat_rows if row.get("type") == "1"]


# --------------------------------------------------------------------------
# Runtime API (stats socket)
# --------------------------------------------------------------------------

def split_reply(raw):
    """Remove the (empty) reply of ``set severity-output number`` and return
    (severity or None, message of the first line, whole text)."""
    text = raw.decode("utf-8", "replace")
    if text.startswith("\n"):
        text = text[1:]
    first = text.split("\n", 1)[0]
    match = _SEVERITY_RE.match(first)
    if match:
        return int(match.group(1)), match.group(2).strip(), text
    return None, first.strip(), text


class RuntimeAPI(object):
    """HAProxy's runtime API over a unix socket path or ``tcp://HOST:PORT``."""

    def __init__(self, target=None, timeout=5.0, sleep=time.sleep):
        self.target = target or DEFAULT_SOCKET
        self.timeout = float(timeout)
        self.sleep = sleep
        self.label = "socket %s" % self.target
        self.tcp = None
        if self.target.startswith("tcp://") or self.target.startswith(("ipv4@", "ipv6@")):
            rest = self.target.split("://", 1)[1] if "://" in self.target else self.target.split("@", 1)[1]
            host, sep, port = rest.rpartition(":")
            host = host.strip("[]")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidInputError("socket %s: not a valid tcp://HOST:PORT address; write it as "
                                        "tcp://127.0.0.1:9999" % self.target)
            self.tcp = (host, int(port))
        elif "://" in self.target:
            raise InvalidInputError("socket %s: unknown scheme; use a unix socket path or "
                                    "tcp://HOST:PORT" % self.target)
        self.can_set_weight = True
        self.can_add = True
        self.shows_addresses = True

    # --- transport

    def _connect(self):
        if self.tcp:
            return socketlib.create_connection(self.tcp, timeout=self.timeout)
        sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.target)
        except Exception:
            sock.close()
            raise
        return sock

    def _exchange(self, command):
        """Send one command, read the whole reply.  ``timeout`` bounds the whole
        exchange, not each recv: a peer that trickles bytes is still cut off."""
        deadline = time.monotonic() + self.timeout
        try:
            sock = self._connect()
        except (OSError, socketlib.timeout) as error:
            raise self._connect_error(error)
        try:
            sock.sendall((SEVERITY_PREFIX + command + "\n").encode("utf-8"))
            chunks = []
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socketlib.timeout()
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socketlib.timeout:
            raise UnreachableError("%s: no complete answer to %r within timeout=%gs; HAProxy may be "
                                   "overloaded or hung; check it, or raise timeout"
                                   % (self.label, command, self.timeout))
        except OSError as error:
            raise UnreachableError("%s: connection lost during %r (%s); check that HAProxy is "
                                   "running" % (self.label, command, _strerror(error)))
        finally:
            sock.close()
        raw = b"".join(chunks)
        if not raw:
            raise UnreachableError("%s: HAProxy closed the connection without answering %r; "
                                   "check that HAProxy is running and this is its stats socket"
                                   % (self.label, command))
        return raw

    def _connect_error(self, error):
        code = getattr(error, "errno", None)
        if isinstance(error, socketlib.timeout):
            return UnreachableError("%s: no answer within timeout=%gs; check that HAProxy is running, "
                                    "or raise timeout" % (self.label, self.timeout))
        if code == errno.ENOENT:
            return UnreachableError(
                "%s: no such socket file; check the path against the 'stats socket' line of "
                "haproxy.cfg and that HAProxy is running on this host (set socket or HAPROXY_SOCKET)"
                % self.label)
        if code in (errno.EACCES, errno.EPERM):
            return PermissionDeniedError(
                "%s: permission denied opening the socket; run the task as a user that may open it "
                "(become: true), or adjust 'mode'/'user'/'group' on its 'stats socket' line" % self.label)
        if code == errno.ECONNREFUSED:
            return UnreachableError(
                "%s: connection refused; HAProxy is not running or not listening there; start it, "
                "or check the 'stats socket' line of haproxy.cfg" % self.label)
        if code in (errno.ENOTSOCK, errno.ENOTDIR, errno.EISDIR):
            return UnreachableError("%s: not a socket; point socket at HAProxy's stats socket" % self.label)
        return UnreachableError("%s: cannot connect (%s); check that HAProxy is running and the "
                                "socket address" % (self.label, _strerror(error)))

    def execute(self, command, subject=None, retries=0):
        """Run one command; return its reply text.  Raises LBError subclasses.

        ``subject`` names the object for error messages ("server app/web1")."""
        attempt = 0
        while True:
            try:
                raw = self._exchange(command)
                break
            except UnreachableError:
                if attempt >= retries:
                    raise
                attempt += 1
                self.sleep(0.2)
        severity, message, text = split_reply(raw)
        if message.startswith("Unknown command"):
            raise CommandError("%s: HAProxy does not know the command %r (Unknown command); this "
                               "HAProxy version is too old for it" % (self.label, command.split()[0]))
        if severity is not None and severity <= 3:
            raise self._command_error(command, message, subject)
        if severity is not None:
            # informational feedback ("[6]: New server registered."): drop the prefix
            text = text.split(": ", 1)[1] if ": " in text.split("\n", 1)[0] else text
        return text

    def _command_error(self, command, message, subject):
        subject = subject or self.label
        if message.startswith("Permission denied"):
            return PermissionDeniedError(
                "%s: HAProxy answered %r to %r: %s is not at level admin; add 'level admin' to its "
                "'stats socket' line in haproxy.cfg, or use a socket that has it"
                % (subject, message, command, self.label))
        if message in ("No such server.", "No such backend.", "Can't find backend.", "No such proxy."):
            return NotFoundError("%s: HAProxy answered %r; check the name against haproxy.cfg "
                                 "(haproxy_member_info lists every server)" % (subject, message))
        hint = "check the request against the HAProxy documentation of %r" % " ".join(command.split()[:2])
        if "static LB algorithm" in message:
            hint = "use weight 0% or 100% here, or give the backend a dynamic algorithm such as roundrobin"
        elif "dynamic load balancing" in message:
            hint = ("servers can only be added at runtime to a backend with a dynamic balance "
                    "algorithm (roundrobin, leastconn, random, first); add it to haproxy.cfg instead")
        elif "Already exists" in message:
            hint = "a server of that name already exists there; select it by name"
        return CommandError("%s: HAProxy refused %r: %s; %s" % (subject, command, message.rstrip("."), hint))

    # --- operations

    def level(self):
        """The socket's level (``user``, ``operator``, ``admin``), or None if
        this HAProxy cannot tell (``show cli level`` is 2.0+)."""
        try:
            text = self.execute("show cli level", retries=1)
        except CommandError:
            return None
        return text.strip() or None

    def servers(self, backends=None):
        """Server records of the named backends (None: every backend)."""
        if backends is None:
            state_text = self.execute("show servers state", retries=1)
            stat_text = self.execute("show stat -1 4 -1", retries=1)
            return server_rows(parse_servers_state(state_text), parse_show_stat(stat_text))
        records = []
        for backend in backends:
            subject = "backend %s" % backend
            try:
                state_text = self.execute("show servers state %s" % backend, subject, retries=1)
            except NotFoundError:
                raise NotFoundError("backend %s: not found (HAProxy has no backend of that name); "
                                    "backends: %s" % (backend, ", ".join(self.backends()) or "none"))
            stat_text = self.execute("show stat %s 4 -1" % backend, subject, retries=1)
            records.extend(server_rows(parse_servers_state(state_text), parse_show_stat(stat_text)))
        return records

    def info(self):
        """``show info`` as a dict ("Pid", "Uptime_sec", "Version", ...)."""
        return parse_info(self.execute("show info", retries=1))

    def identity_key(self):
        """This socket as a lock name: the same socket reached by two paths is one balancer."""
        if self.tcp:
            return "tcp://%s:%d" % self.tcp
        return os.path.realpath(self.target)

    def backends(self):
        text = self.execute("show backend", retries=1)
        return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]

    def set_state(self, backend, server, state):
        self.execute("set server %s/%s state %s" % (backend, server, STATE_COMMANDS[state]),
                     "server %s/%s" % (backend, server))

    def set_weight(self, backend, server, weight):
        self.execute("set weight %s/%s %d" % (backend, server, weight), "server %s/%s" % (backend, server))

    def add_server(self, backend, server, address, port, check):
        where = "[%s]" % address if ":" in address else address
        command = "add server %s/%s %s:%d" % (backend, server, where, port)
        if check:
            command += " check"
        self.execute(command, "server %s/%s" % (backend, server))
        if check:
            self.execute("enable health %s/%s" % (backend, server), "server %s/%s" % (backend, server))

    def shutdown_sessions(self, backend, server):
        self.execute("shutdown sessions server %s/%s" % (backend, server), "server %s/%s" % (backend, server))


def _strerror(error):
    return getattr(error, "strerror", None) or str(error) or error.__class__.__name__


# --------------------------------------------------------------------------
# Statistics page (admin form)
# --------------------------------------------------------------------------

class StatsPage(object):
    """HAProxy's statistics page: reads ``<uri>;csv``, changes servers by
    POSTing its admin form (``s=``, ``action=``, ``b=``).  It cannot set
    weights, add servers, or show the admin-state bitmask or addresses."""

    def __init__(self, url, user=None, password=None, validate_certs=True, timeout=5.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError("stats_url %s: not an http:// or https:// URL; write it as "
                                    "http://lb1:8404/stats" % redact_url(url))
        # Credentials written into the URL (http://admin:pw@lb1/stats) are used
        # unless stats_user/stats_password are given, and never shown.
        if user is None and parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
        self.url = redact_url(url)
        self.parts = parts
        self.user = user
        self.password = password
        self.validate_certs = validate_certs
        self.timeout = float(timeout)
        self.label = "stats page %s" % self.url
        self.can_set_weight = False
        self.can_add = False
        self.shows_addresses = False

    def _request(self, method, path, body=None):
        parts = self.parts
        try:
            if parts.scheme == "https":
                context = ssl.create_default_context()
                if not self.validate_certs:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                conn = httplib.HTTPSConnection(parts.hostname, parts.port or 443, timeout=self.timeout,
                                               context=context)
            else:
                conn = httplib.HTTPConnection(parts.hostname, parts.port or 80, timeout=self.timeout)
        except ValueError as error:   # a bad port in the URL
            raise InvalidInputError("stats_url %s: %s" % (self.url, error))
        headers = {"Connection": "close"}
        if self.user is not None:
            token = base64.b64encode(("%s:%s" % (self.user, self.password or "")).encode("utf-8"))
            headers["Authorization"] = "Basic " + token.decode("ascii")
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            deadline = time.monotonic() + self.timeout
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            # timeout bounds the whole answer, not each recv (see RuntimeAPI._exchange)
            chunks = []
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socketlib.timeout()
                if conn.sock is not None:
                    conn.sock.settimeout(left)
                chunk = response.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return response.status, dict((k.lower(), v) for k, v in response.getheaders()), b"".join(chunks)
        except ssl.SSLError as error:
            raise UnreachableError("%s: TLS failed (%s); fix the certificate, or set "
                                   "validate_certs: false for a self-signed one" % (self.label, error))
        except socketlib.timeout:
            raise UnreachableError("%s: no answer within timeout=%gs; check that HAProxy is "
                                   "running, or raise timeout" % (self.label, self.timeout))
        except OSError as error:
            raise UnreachableError("%s: cannot connect (%s); check the URL and that HAProxy is "
                                   "running" % (self.label, _strerror(error)))
        except httplib.HTTPException as error:
            raise UnreachableError("%s: bad HTTP answer (%s); check that stats_url is HAProxy's "
                                   "stats page" % (self.label, error.__class__.__name__))
        finally:
            conn.close()

    def _path(self, suffix=""):
        return (self.parts.path or "/") + suffix

    def _check_auth(self, status):
        if status == 401:
            if self.user is None:
                raise AuthRefusedError("%s: asks for credentials (HTTP 401); set stats_user and "
                                       "stats_password (or HAPROXY_STATS_USER/HAPROXY_STATS_PASSWORD)"
                                       % self.label)
            raise AuthRefusedError("%s: user %s was refused (HTTP 401); check stats_user and "
                                   "stats_password against the 'stats auth' line of haproxy.cfg"
                                   % (self.label, self.user))
        if status == 403:
            raise PermissionDeniedError("%s: access forbidden (HTTP 403); allow this client in the "
                                        "stats section of haproxy.cfg" % self.label)

    def csv(self):
        status, _headers, data = self._request("GET", self._path(";csv;norefresh"))
        self._check_auth(status)
        if status != 200:
            raise CommandError("%s: HTTP %d instead of the CSV statistics; check that stats_url is "
                               "the 'stats uri' of HAProxy's stats page" % (self.label, status))
        try:
            return parse_show_stat(data.decode("utf-8", "replace"))
        except CommandError:
            raise CommandError("%s: the reply is not HAProxy's CSV statistics; check that stats_url "
                               "is the 'stats uri' of HAProxy's stats page" % self.label)

    def servers(self, backends=None):
        rows = self.csv()
        if backends is not None:
            known = backends_in_csv(rows)
            for backend in backends:
                if backend not in known:
                    raise NotFoundError("backend %s: not found on %s; backends: %s"
                                        % (backend, self.label, ", ".join(known) or "none"))
        records = csv_server_rows(rows)
        if backends is not None:
            records = [r for r in records if r["backend"] in backends]
        return records

    def post(self, backend, server, action):
        body = urlencode([("s", server), ("action", action), ("b", backend)])
        status, headers, _data = self._request("POST", self._path(), body)
        self._check_auth(status)
        subject = "server %s/%s" % (backend, server)
        location = headers.get("location", "")
        match = re.search(r";st=([A-Z]+)", location)
        if status not in (301, 302, 303) or not match:
            raise CommandError("%s: %s answered HTTP %d without a result code; check that stats_url "
                               "is HAProxy's stats page" % (subject, self.label, status))
        code = match.group(1)
        if code == "DONE":
            return
        if code == "DENY":
            raise PermissionDeniedError(
                "%s: %s refused the change (st=DENY): %s; configure 'stats admin if <condition>' "
                "in that stats section of haproxy.cfg" % (subject, self.label, STATS_CODES[code]))
        if code in ("ERRP", "PART"):
            raise NotFoundError("%s: %s answered st=%s (%s); check the backend and server names "
                                "against haproxy.cfg" % (subject, self.label, code, STATS_CODES[code]))
        raise CommandError("%s: %s answered st=%s (%s) to action %s; check the stats page "
                           "configuration" % (subject, self.label, code, STATS_CODES.get(code, "unknown code"),
                                              action))

    def level(self):
        return None

    def info(self):
        return {}     # the stats page shows no process id

    def identity_key(self):
        parts = self.parts
        return "%s://%s:%s%s" % (parts.scheme, parts.hostname, parts.port or "", parts.path or "/")

    def set_state(self, backend, server, state):
        self.post(backend, server, STATE_COMMANDS[state])

    def set_weight(self, backend, server, weight):
        raise InvalidInputError("weight: the stats page cannot change weights; use socket (the "
                                "runtime API) to set weight, or leave weight out")

    def add_server(self, backend, server, address, port, check):
        raise InvalidInputError("server %s: the stats page cannot add servers; use socket (the "
                                "runtime API, HAProxy 2.6+) or add it to haproxy.cfg" % server)

    def shutdown_sessions(self, backend, server):
        self.post(backend, server, "shutdown")


def redact_url(url):
    """The URL with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc="%s:***@%s" % (parts.username, netloc)).geturl()


def transport_from(socket=None, stats_url=None, stats_user=None, stats_password=None,
                   validate_certs=True, timeout=5.0):
    """The client for the connection options (socket wins; stats_url; else
    Debian's default socket path)."""
    if stats_url and not socket:
        return StatsPage(stats_url, stats_user, stats_password, validate_certs, timeout)
    return RuntimeAPI(socket or DEFAULT_SOCKET, timeout)


# --------------------------------------------------------------------------
# The backend the core drives
# --------------------------------------------------------------------------

class HAProxyBackend(Backend):
    """The core's backend for HAProxy (see ``member.Backend`` for the contract),
    over the runtime API (``RuntimeAPI``) or the stats page (``StatsPage``)."""

    kind = "HAProxy"
    container_label = "backend"
    member_label = "server"
    can_force = True                  # shutdown sessions server
    # A poll is two short commands on a local socket: cheap enough to look
    # five times a second, so a drain is noticed ~0.1 s after its last session.
    default_poll_interval = 0.2

    def __init__(self, transport):
        super(HAProxyBackend, self).__init__()
        self.transport = transport
        self._members = []

    # --- before any I/O

    def validate(self, request):
        for selector in request.selectors:
            if (request.state == "present" and selector.name is not None and selector.address is not None
                    and not self.transport.shows_addresses):
                raise InvalidInputError("server %s: the stats page cannot add servers nor match addresses; "
                                        "use socket (the runtime API) to add a dynamic server, or name an "
                                        "existing server without address" % selector.name)
        self.validate_scope(request.containers, request.selectors)
        weight = parse_weight(request.weight)
        if weight is not None and not self.transport.can_set_weight and request.state == "present":
            raise InvalidInputError("weight: the stats page cannot change weights; use socket (the "
                                    "runtime API) to set weight, or leave weight out")

    def validate_scope(self, containers, selectors):
        """Names and selectors, checked before any I/O."""
        for backend in containers or []:
            validate_name("backend", backend)
        for selector in selectors or []:
            if selector.name is not None:
                validate_name("server", selector.name)
            if selector.address is not None and not self.transport.shows_addresses:
                raise InvalidInputError("address: the stats page does not show server addresses; select "
                                        "the server by name (server=...), or use socket")

    def lock_key(self):
        return "haproxy %s" % self.transport.identity_key()

    # --- reads

    def read(self, containers):
        records = self.transport.servers(containers)
        self._members = [self._member(r) for r in records]
        return list(self._members)

    def poll(self, containers):
        try:
            return [self._member(r) for r in self.transport.servers(containers)]
        except UnreachableError as error:
            cause = error.msg.split(": ", 1)[-1].split(";", 1)[0]
            raise UnreachableError("%s: HAProxy stopped answering while waiting for the goal (%s); "
                                   "check that HAProxy is running, then rerun this task"
                                   % (self.transport.label, cause))

    def identity(self):
        """(pid, start time) of the process answering the socket: a reload or a
        restart changes the pid (a master-worker reload starts a new worker)."""
        try:
            info = self.transport.info()
        except LBError:
            return None
        if not info:
            return None
        uptime = _int(info.get("Uptime_sec"), None)
        start = _int(info.get("Start_time_sec"), None)
        if start is None and uptime is not None:
            start = int(time.time()) - uptime
        return dict(pid=info.get("Pid"), start=start, uptime=uptime)

    def explain_drift(self, before, now):
        if not before or not now:
            return None
        if before.get("pid") != now.get("pid"):
            return "HAProxy was reloaded or restarted: pid %s -> %s, up %ss" % (
                before.get("pid"), now.get("pid"), now.get("uptime"))
        return ("HAProxy was not reloaded (pid %s, up %ss): another client changed it - the runtime API, the "
                "stats page or an agent check" % (now.get("pid"), now.get("uptime")))

    @staticmethod
    def _member(record):
        details = dict(
            backend=record["backend"],
            admin_state=record["admin_state"],
            admin_flags=admin_flags(record["admin_state"]),
            status=record["status"],
            operational_state=record["operational_state"],
            check_status=record["check_status"],
            current_sessions=record["sessions"],
            queued=record["queued"],
            initial_weight=record["initial_weight"],
            backup=record["backup"],
            health_check=record["checked"],
            tracks=record["tracks"],
            fqdn=record["fqdn"],
        )
        return Member(record["backend"], record["name"], record["address"], record["port"],
                      state=record["state"], weight=record["weight"],
                      sessions=record["sessions"] + record["queued"], health=record["health"],
                      backup=record["backup"], details=details)

    # --- planning

    def target_weight(self, member, requested):
        weight = parse_weight(requested)
        if weight is None:
            if member.weight == 0:
                # present means in rotation: a server left at weight 0 gets its
                # configured weight back (there is nothing else to remember).
                initial = member.details.get("initial_weight")
                if not self.transport.can_set_weight:
                    raise InvalidInputError(
                        "server %s/%s: its weight is 0, so it would stay out of rotation, and the stats page "
                        "cannot change weights; use socket (the runtime API)" % member.key)
                return initial if initial else 1
            return None
        return resolve_weight(weight, member.details.get("initial_weight"))

    def new_member(self, container, selector, request):
        who = selector.describe()
        if not self.transport.can_add:
            raise NotFoundError("server %s: not found in backend %s, and the stats page cannot add "
                                "servers; add it to haproxy.cfg, or use socket (HAProxy 2.6+ adds "
                                "dynamic servers)" % (who, container))
        if selector.name is None or selector.address is None or selector.port is None:
            raise NotFoundError("server %s: not found in backend %s; to add it as a dynamic server "
                                "give both server (its name) and address as IP:PORT"
                                % (who, container))
        same_name = [m for m in self._members if m.container == container and m.name == selector.name]
        if same_name:
            found = same_name[0]
            raise InvalidInputError("server %s: exists in backend %s with address %s:%s, not %s:%s; "
                                    "select it by name only, or use another name"
                                    % (selector.name, container, found.address, found.port,
                                       selector.address, selector.port))
        siblings = [m for m in self._members if m.container == container]
        checked = any(m.details.get("health_check") for m in siblings)
        details = dict(backend=container, admin_state=None, admin_flags=[], status=None,
                       operational_state=None, check_status=None, current_sessions=0, queued=0,
                       initial_weight=1, backup=False, tracks=None, fqdn=None,
                       health_check=checked)
        return Member(container, selector.name, selector.address, selector.port, state="absent",
                      weight=None, sessions=0, health="unknown", details=details)

    def check_plan(self, plan, members, request):
        """Refuse, before anything is written, what HAProxy would accept but
        not carry out: bits inherited from a tracked server (or DNS) cannot be
        cleared on this server; and a socket below level admin."""
        targets = set(m.key for m in plan.targets)
        for change in plan.changes:
            member = change.member
            admin = member.details.get("admin_state") or 0
            blocking = 0
            if change.state == "present":
                blocking = admin & (IMAINT | IDRAIN | RMAINT)
            elif change.state == "drained":
                blocking = admin & (IMAINT | RMAINT)
            if not blocking:
                continue
            if blocking & RMAINT:
                raise CommandError(
                    "server %s/%s: in maintenance because its address does not resolve (RMAINT); "
                    "HAProxy clears that itself once DNS answers; fix DNS or the server's address"
                    % member.key)
            tracked = member.details.get("tracks")
            if tracked and tuple(tracked.split("/", 1)) in targets:
                continue   # its tracked server is changed by this same plan
            what = "maintenance" if blocking & IMAINT else "drain"
            raise CommandError(
                "server %s/%s: %s is inherited from the server it tracks (%s), so it cannot be "
                "cleared on this server; change %s instead, or include it in this call"
                % (member.key[0], member.key[1], what, tracked or "unknown", tracked or "the tracked server"))
        if plan.changes or request.on_timeout == "force":
            level = self.transport.level()
            if level is not None and level != "admin":
                raise PermissionDeniedError(
                    "%s: level %s, but changing servers needs level admin; add 'level admin' to its "
                    "'stats socket' line in haproxy.cfg, or use a socket that has it"
                    % (self.transport.label, level))

    # --- writes

    def apply(self, change, request):
        member = change.member
        backend, server = member.key
        if change.add:
            self.transport.add_server(backend, server, member.address, member.port,
                                      member.details.get("health_check"))
            if change.weight is not None:
                self.transport.set_weight(backend, server, change.weight)
            self.transport.set_state(backend, server, "present")
            return
        if change.state == "present":
            if change.weight is not None and change.weight != member.weight:
                self.transport.set_weight(backend, server, change.weight)
            if member.state != "present":
                self.transport.set_state(backend, server, "present")
            return
        self.transport.set_state(backend, server, change.state)

    def force(self, members):
        for member in members:
            self.transport.shutdown_sessions(member.container, member.name)
        return "'shutdown sessions server' sent for %s" % ", ".join("%s/%s" % m.key for m in members)
