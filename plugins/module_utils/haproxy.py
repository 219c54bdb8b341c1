# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy for gentle.lb: the runtime API client (unix and TCP stats sockets),
the master CLI client, their parsers, and ``HAProxyBackend``, the backend the
core (``member.py``) drives.  The statistics page client is in
haproxy_stats.py (loaded only when ``stats_url`` is used), the files written
on the balancer (server-state-file, agent memory) in haproxy_files.py.

Wire facts this file relies on (checked against HAProxy 2.6, 3.0 and 3.2, see
tests/unit/fixtures/haproxy/):

* One command line per connection.  Every line is sent as
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

import errno
import ipaddress
import os
import re
import socket as socketlib
import time

from ansible_collections.gentle.lb.plugins.module_utils.haproxy_files import (
    DEFAULT_AGENT_MEMORY,
    DEFAULT_CONFIG,
    AgentMemory,
    ServerStateConfig,
    check_writable,
    config_files,
    running_config_paths,
    save_server_states,
)
from ansible_collections.gentle.lb.plugins.module_utils.member import (
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


def parse_show_proc(text):
    """The master CLI's ``show proc`` -> [{pid, type, role, reloads}], role
    ``master``, ``current`` (the worker serving now), ``old`` (workers of
    earlier configurations finishing their connections) or ``program``.
    2.6 and 3.0 end with a ``# programs`` section, 3.2 without one."""
    roles = {"workers": "current", "old workers": "old", "programs": "program"}
    role = "master"
    processes = []
    for line in text.splitlines():
        if line.startswith("#"):
            role = roles.get(line[1:].strip(), role)
            continue
        words = line.split()
        if len(words) >= 3 and words[0].isdigit():
            processes.append(dict(pid=int(words[0]), type=words[1], role=role, reloads=_int(words[2], None)))
    if not any(p["role"] == "master" for p in processes):
        raise CommandError("show proc: not the master CLI's process list (%r); point master_socket at the "
                           "socket of haproxy's -S option" % text[:80])
    return processes


def parse_show_sess(text):
    """``show sess`` -> [(stream id, backend, server)]: one line per stream,
    ``0x55f6...: proto=tcpv4 src=... fe=fe_main be=app srv=web2 ...``."""
    streams = []
    for line in text.splitlines():
        stream, sep, rest = line.partition(":")
        if not sep or not stream.startswith("0x"):
            continue
        fields = dict(word.split("=", 1) for word in rest.split() if "=" in word)
        streams.append((stream, fields.get("be"), fields.get("srv")))
    return streams


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
        agent = row.get("srv_agent_state", 0) if isinstance(row.get("srv_agent_state"), int) else 0
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
            agent_check=bool(agent & CHK_CONFIGURED), agent_enabled=bool(agent & CHK_ENABLED),
            **_stat_extras(stat)
        ))
    return servers


def _stat_extras(stat):
    """The ``show stat`` columns every record carries besides the state: the
    agent's last result, the check's rise/fall, and the two session counters
    that tell persistent sessions apart (``stot`` counts every session the
    server got, ``lbtot`` only those the load-balancing algorithm chose)."""
    return dict(agent_status=_check_status(stat.get("agent_status")),
                check_rise=_int(stat.get("check_rise"), None), check_fall=_int(stat.get("check_fall"), None),
                total_sessions=_int(stat.get("stot"), None), balanced_sessions=_int(stat.get("lbtot"), None),
                **traffic_counters(stat))


# What the server's traffic did, for an analysis gate (the role's soak):
# record key -> show stat column.  Cumulative since the worker started (or since
# `clear counters`), except rtime: the average response time, in ms, of the
# last 1024 requests.
TRAFFIC_COLUMNS = dict(requests="req_tot", connection_errors="econ", response_errors="eresp",
                       retries="wretr", redispatches="wredis", response_time_ms="rtime")
RESPONSE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


def traffic_counters(stat):
    """The traffic counters of one ``show stat`` server row; ``requests`` and
    ``responses`` (per status class, from ``hrsp_*``) are None for a TCP-mode
    backend, which has no HTTP counters."""
    counters = dict((key, _int(stat.get(column), None)) for key, column in TRAFFIC_COLUMNS.items())
    responses = dict((name, _int(stat.get("hrsp_" + name), None)) for name in RESPONSE_CLASSES)
    counters["responses"] = None if None in responses.values() else responses
    return counters


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
            # The CSV has the agent's last result but not whether it is enabled.
            agent_check=bool(row.get("agent_status")), agent_enabled=None,
            **_stat_extras(row)
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


class SocketClient(object):
    """One command per connection to a unix socket path or ``tcp://HOST:PORT``:
    what the runtime API (``RuntimeAPI``) and the master CLI (``MasterCLI``)
    share.  ``option``/``env`` name the setting in messages; ``configured_by``
    names where HAProxy's configuration declares the socket."""

    option = "socket"
    env = "HAPROXY_SOCKET"
    configured_by = "the 'stats socket' line of haproxy.cfg"
    # The master CLI answers only once the client has ended its input (2.6
    # otherwise keeps the connection open until its own timeout, 10 s).
    half_close = False

    def __init__(self, target, timeout=5.0, sleep=time.sleep):
        self.target = target
        self.timeout = float(timeout)
        self.sleep = sleep
        self.label = "%s %s" % (self.option, self.target)
        self.tcp = None
        if self.target.startswith("tcp://") or self.target.startswith(("ipv4@", "ipv6@")):
            rest = self.target.split("://", 1)[1] if "://" in self.target else self.target.split("@", 1)[1]
            host, sep, port = rest.rpartition(":")
            host = host.strip("[]")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidInputError("%s %s: not a valid tcp://HOST:PORT address; write it as "
                                        "tcp://127.0.0.1:9999" % (self.option, self.target))
            self.tcp = (host, int(port))
        elif "://" in self.target:
            raise InvalidInputError("%s %s: unknown scheme; use a unix socket path or "
                                    "tcp://HOST:PORT" % (self.option, self.target))

    def identity_key(self):
        """This socket as a lock name: the same socket reached by two paths is one balancer."""
        if self.tcp:
            return "tcp://%s:%d" % self.tcp
        return os.path.realpath(self.target)

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

    def _exchange(self, line, command):
        """Send one ``line``, read the whole reply.  ``timeout`` bounds the whole
        exchange, not each recv: a peer that trickles bytes is still cut off.
        ``command`` is what messages quote."""
        deadline = time.monotonic() + self.timeout
        try:
            sock = self._connect()
        except (OSError, socketlib.timeout) as error:
            raise self._connect_error(error)
        try:
            sock.sendall((line + "\n").encode("utf-8"))
            if self.half_close:
                sock.shutdown(socketlib.SHUT_WR)
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
                                   "check that HAProxy is running and this is its %s"
                                   % (self.label, command, self.option.replace("_", " ")))
        return raw

    def _connect_error(self, error):
        code = getattr(error, "errno", None)
        if isinstance(error, socketlib.timeout):
            return UnreachableError("%s: no answer within timeout=%gs; check that HAProxy is running, "
                                    "or raise timeout" % (self.label, self.timeout))
        if code == errno.ENOENT:
            return UnreachableError(
                "%s: no such socket file; check the path against %s and that HAProxy is running on "
                "this host (set %s or %s)" % (self.label, self.configured_by, self.option, self.env))
        if code in (errno.EACCES, errno.EPERM):
            return PermissionDeniedError(
                "%s: permission denied opening the socket; run the task as a user that may open it "
                "(become: true), or adjust 'mode'/'user'/'group' on %s" % (self.label, self.configured_by))
        if code == errno.ECONNREFUSED:
            return UnreachableError(
                "%s: connection refused; HAProxy is not running or not listening there; start it, "
                "or check %s" % (self.label, self.configured_by))
        if code in (errno.ENOTSOCK, errno.ENOTDIR, errno.EISDIR):
            return UnreachableError("%s: not a socket; point %s at HAProxy's %s"
                                    % (self.label, self.option, self.option.replace("_", " ")))
        return UnreachableError("%s: cannot connect (%s); check that HAProxy is running and the "
                                "socket address" % (self.label, _strerror(error)))


class RuntimeAPI(SocketClient):
    """HAProxy's runtime API over a unix socket path or ``tcp://HOST:PORT``."""

    def __init__(self, target=None, timeout=5.0, sleep=time.sleep):
        super(RuntimeAPI, self).__init__(target or DEFAULT_SOCKET, timeout, sleep)
        self.can_set_weight = True
        self.can_add = True
        self.shows_addresses = True

    def execute(self, command, subject=None, retries=0):
        """Run one command; return its reply text.  Raises LBError subclasses.

        ``subject`` names the object for error messages ("server app/web1")."""
        attempt = 0
        while True:
            try:
                raw = self._exchange(SEVERITY_PREFIX + command, command)
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
            return self._state_and_stat("show servers state; show stat -1 4 -1", None)
        records = []
        for backend in backends:
            command = "show servers state %s; show stat %s 4 -1" % (backend, backend)
            try:
                records.extend(self._state_and_stat(command, "backend %s" % backend))
            except NotFoundError:
                raise NotFoundError("backend %s: not found (HAProxy has no backend of that name); "
                                    "backends: %s" % (backend, ", ".join(self.backends()) or "none"))
        return records

    def _state_and_stat(self, command, subject):
        """Both reads on one connection: one process answers both, so a
        reload cannot pair the old worker's admin state with the new worker's
        counters (and a poll costs one connection, not two)."""
        text = self.execute(command, subject, retries=1)
        cut = text.find("\n# pxname,")
        state_text, stat_text = (text, "") if cut < 0 else (text[:cut + 1], text[cut + 1:])
        return server_rows(parse_servers_state(state_text), parse_show_stat(stat_text))

    def info(self):
        """``show info`` as a dict ("Pid", "Uptime_sec", "Version", ...)."""
        return parse_info(self.execute("show info", retries=1))

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

    def set_agent(self, backend, server, enabled):
        self.execute("%s agent %s/%s" % ("enable" if enabled else "disable", backend, server),
                     "server %s/%s" % (backend, server))

    def servers_state_text(self, backend=None):
        """``show servers state [backend]`` as HAProxy prints it: what a
        server-state-file holds."""
        return self.execute(("show servers state %s" % backend) if backend else "show servers state",
                            retries=1)


class MasterCLI(SocketClient):
    """The master CLI of HAProxy in master-worker mode (``haproxy -W -S
    <socket>``, as systemd runs it).  It lists every live process (``show
    proc``) and forwards a command to any of them (``@!<pid> <command>``),
    including the old workers a reload leaves behind to finish their
    connections, which the stats socket (served by the current worker) never
    shows.

    Wire facts (2.6, 3.0, 3.2): it answers once the client shuts its write
    side; a prefix applies to one command only, so ``set severity-output``
    cannot be combined with a forwarded command and replies are plain text
    (``No such proxy.``); an unknown pid gives ``Can't find the target PID``,
    a worker that is exiting ``Can't connect to the target CLI!``; 3.0 refuses
    connections for a moment after a SIGUSR2 reload."""

    option = "master_socket"
    env = "HAPROXY_MASTER_SOCKET"
    configured_by = "the -S option of haproxy (haproxy -W -S <socket>)"
    half_close = True

    def execute(self, command, retries=3):
        attempt = 0
        while True:
            try:
                raw = self._exchange(command, command)
                break
            except UnreachableError:
                if attempt >= retries:
                    raise
                attempt += 1
                self.sleep(0.1 * attempt)
        text = raw.decode("utf-8", "replace")
        if text.startswith("Unknown command"):
            raise CommandError("%s: HAProxy does not know %r there (Unknown command); point master_socket at "
                               "the socket of haproxy's -S option, not at a stats socket"
                               % (self.label, command.split()[0]))
        return text

    def processes(self):
        return parse_show_proc(self.execute("show proc"))

    def worker(self, pid, command):
        """``command`` run by worker ``pid``; None if that worker is gone
        (an old worker exits once its last connection ends)."""
        text = self.execute("@!%d %s" % (pid, command))
        # An exited worker is unknown ("Can't find the target PID"); one exiting
        # right now no longer takes connections ("Can't connect to the target CLI!").
        if text.startswith(("Can't find the target PID", "Can't connect to the target CLI")):
            return None
        return text


def _strerror(error):
    return getattr(error, "strerror", None) or str(error) or error.__class__.__name__


def transport_from(socket=None, stats_url=None, stats_user=None, stats_password=None,
                   validate_certs=True, timeout=5.0):
    """The client for the connection options (socket wins; stats_url; else
    Debian's default socket path)."""
    if stats_url and not socket:
        # Imported here: the runtime API never needs an HTTP/TLS stack.
        from ansible_collections.gentle.lb.plugins.module_utils.haproxy_stats import StatsPage
        return StatsPage(stats_url, stats_user, stats_password, validate_certs, timeout)
    return RuntimeAPI(socket or DEFAULT_SOCKET, timeout)


# --------------------------------------------------------------------------
# The backend the core drives
# --------------------------------------------------------------------------

class HAProxyBackend(Backend):
    """The core's backend for HAProxy (see ``member.Backend`` for the contract),
    over the runtime API (``RuntimeAPI``) or the stats page (``StatsPage``).

    What production HAProxy adds, each optional:

    * ``master`` (a ``MasterCLI``): a server's sessions are counted in every
      live worker -- an old worker keeps the connections it had when HAProxy
      was reloaded, and the stats socket shows only the current one --,
      reported per process (``workers``), and ``force`` ends them there too.
    * ``save_state``: after every write, ``show servers state`` is written to
      the server-state-file(s) this HAProxy loads on a reload (found in its
      configuration, or ``server_state_file``), so a reload keeps the drain.
    * Agent checks: an agent answering ``ready`` undoes a drain, so an enabled
      agent is disabled before its server is drained or put in maintenance, and
      remembered (``AgentMemory``); ``present`` enables exactly those again.
    * Persistence: ``persistent_arrivals`` counts the sessions that reached a
      drained server anyway (``stot`` grew, ``lbtot`` did not); with the
      request option ``persistence_grace``, a drained server still holding
      sessions after that many seconds of waiting is put in maintenance, which
      stops persistence (``drain_ended_by`` says which step ended the drain).
    """

    kind = "HAProxy"
    container_label = "backend"
    member_label = "server"
    can_force = True                  # shutdown sessions server
    # A poll is two short commands on a local socket: cheap enough to look
    # five times a second, so a drain is noticed ~0.1 s after its last session.
    default_poll_interval = 0.2

    def __init__(self, transport, master=None, config=None, save_state=False, server_state_file=None,
                 agent_memory=None, clock=time.monotonic):
        super(HAProxyBackend, self).__init__()
        self.transport = transport
        self.master = master
        self.config = [config] if isinstance(config, str) else config
        self.save_state = save_state
        self.server_state_file = server_state_file
        self.agents = agent_memory or AgentMemory()
        self.clock = clock
        self._members = []
        self._request = None
        self._config = None             # (paths, ServerStateConfig or None, why not)
        self._first_identity = None
        self._master_checked = False
        self._baseline = {}             # key -> (stot, lbtot) when this run first read the server
        self._carried = {}              # key -> persistent arrivals counted before the counters restarted
        self._arrivals = {}             # key -> persistent arrivals at the latest read
        self._wait_started = None       # clock() of the first poll
        self._escalated = set()         # keys this run put in MAINT after persistence_grace
        self._forced = set()            # keys on_timeout: force was applied to
        self._left_maintenance = set()  # checked servers this run took from MAINT to READY

    # --- before any I/O

    def validate(self, request):
        self._request = request
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
        grace = request.options.get("persistence_grace")
        if grace is not None and not grace > 0:
            raise InvalidInputError("persistence_grace %s: must be above 0 seconds; leave it unset to never "
                                    "stop honouring persistence" % grace)
        if self.save_state and not isinstance(self.transport, RuntimeAPI):
            raise InvalidInputError("save_state: the stats page cannot read 'show servers state'; use socket "
                                    "(the runtime API) to save server states, or leave save_state off")

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
        self._members = [self._member(r) for r in self._records(containers)]
        return list(self._members)

    def poll(self, containers):
        if self._wait_started is None:
            self._wait_started = self.clock()
        members = [self._member(r) for r in self._records(containers, waiting=True)]
        self._escalate(members)
        self._warn_if_the_gate_is_blind(members)
        return members

    def _records(self, containers, waiting=False):
        try:
            records = self.transport.servers(containers)
        except UnreachableError as error:
            if not waiting:
                raise
            cause = error.msg.split(": ", 1)[-1].split(";", 1)[0]
            raise UnreachableError("%s: HAProxy stopped answering while waiting for the goal (%s); "
                                   "check that HAProxy is running, then rerun this task"
                                   % (self.transport.label, cause))
        if self.master is not None:
            self._add_workers(records, containers)
        return records

    def _add_workers(self, records, containers):
        """Add the sessions old workers still hold for each server (``workers``:
        one entry per live worker, the current one first)."""
        processes = self.master.processes()
        current = [p["pid"] for p in processes if p["role"] == "current"]
        if not self._master_checked:
            current = self._check_same_haproxy(current)
            self._master_checked = True
        held = {}
        for process in processes:
            if process["role"] != "old":
                continue
            for row in self._worker_stat(process["pid"], containers):
                sessions = _int(row.get("scur")) + _int(row.get("qcur"))
                held.setdefault((row.get("pxname"), row.get("svname")), []).append((process["pid"], sessions))
        for record in records:
            old = held.get((record["backend"], record["name"]), [])
            record["workers"] = ([dict(pid=current[0] if current else None, role="current",
                                       sessions=record["sessions"] + record["queued"])]
                                 + [dict(pid=pid, role="old", sessions=count) for pid, count in old])
            record["old_sessions"] = sum(count for _pid, count in old)

    def _worker_stat(self, pid, containers):
        """The server rows of ``show stat`` as worker ``pid`` sees them."""
        commands = (["show stat -1 4 -1"] if containers is None
                    else ["show stat %s 4 -1" % backend for backend in containers])
        rows = []
        for command in commands:
            text = self.master.worker(pid, command)
            if text is None:
                break                   # it has just exited
            if text.startswith("No such proxy"):
                continue                # a backend that configuration did not have
            rows.extend(r for r in parse_show_stat(text) if r.get("type") == "2")
        return rows

    def _check_same_haproxy(self, current):
        """The master's current worker must be the process answering the
        stats socket; a reload under way gets one more look."""
        for attempt in range(2):
            pid = _int(self.transport.info().get("Pid"), None)
            if pid is None or pid in current:
                return current
            if attempt == 0:
                time.sleep(0.2)
                current = [p["pid"] for p in self.master.processes() if p["role"] == "current"]
        raise InvalidInputError("%s: its current worker is pid %s, but %s answers as pid %s; point master_socket "
                                "and socket at the same HAProxy"
                                % (self.master.label, ", ".join(str(p) for p in current) or "none",
                                   self.transport.label, pid))

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
        identity = dict(pid=info.get("Pid"), start=start, uptime=uptime)
        if self._first_identity is None:
            self._first_identity = identity
        return identity

    def explain_drift(self, before, now):
        if not before or not now:
            return None
        if before.get("pid") != now.get("pid"):
            return "HAProxy was reloaded or restarted: pid %s -> %s, up %ss" % (
                before.get("pid"), now.get("pid"), now.get("uptime"))
        return ("HAProxy was not reloaded (pid %s, up %ss): another client changed it - the runtime API, the "
                "stats page or an agent check" % (now.get("pid"), now.get("uptime")))

    def _member(self, record):
        key = (record["backend"], record["name"])
        state = record["state"]
        if key in self._escalated:
            if state == "absent":
                state = "drained"       # this run's own step of the drain (see _escalate)
            else:
                self._escalated.discard(key)    # put back to DRAIN by someone: the ladder starts over
        sessions = record["sessions"] + record["queued"] + record.get("old_sessions", 0)
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
            check_rise=record.get("check_rise"),
            check_fall=record.get("check_fall"),
            tracks=record["tracks"],
            fqdn=record["fqdn"],
            agent_check=record.get("agent_check", False),
            agent_enabled=record.get("agent_enabled"),
            agent_status=record.get("agent_status"),
            total_sessions=record.get("total_sessions"),
            balanced_sessions=record.get("balanced_sessions"),
        )
        details.update((key, record.get(key)) for key in list(TRAFFIC_COLUMNS) + ["responses"])
        if "workers" in record:
            details["workers"] = record["workers"]
        request = self._request
        if request is not None and request.state in ("drained", "absent"):
            arrivals = self._persistent_arrivals(key, record)
            if self._wait_started is not None:
                details["persistent_arrivals"] = arrivals
                details["drain_ended_by"] = (self._drain_step(key, record)
                                             if sessions <= request.drain_threshold else None)
        return Member(record["backend"], record["name"], record["address"], record["port"],
                      state=state, weight=record["weight"], sessions=sessions, health=record["health"],
                      backup=record["backup"], details=details)

    def _persistent_arrivals(self, key, record):
        """Sessions that reached the server since this run first read it without
        the load-balancing algorithm choosing it: ``stot`` grew, ``lbtot`` did
        not.  A drained server is never chosen, so each of them came through
        persistence (a cookie, a stick table) or a ``use-server`` rule."""
        total, balanced = record.get("total_sessions"), record.get("balanced_sessions")
        if total is None or balanced is None:
            return None
        base = self._baseline.get(key)
        if base is None:
            base = self._baseline[key] = (total, balanced)
        elif total < base[0] or balanced < base[1]:
            # The counters restarted: a reload or a restart started a new process.
            self._carried[key] = self._arrivals.get(key, 0)
            base = self._baseline[key] = (0, 0)
        arrivals = self._carried.get(key, 0) + max(0, (total - base[0]) - (balanced - base[1]))
        self._arrivals[key] = arrivals
        return arrivals

    def _drain_step(self, key, record):
        """The step of the drain a server is at: ``drain`` (DRAIN),
        ``maintenance`` (MAINT: state absent, or persistence_grace passed),
        ``force`` (on_timeout: force ended its sessions)."""
        if key in self._forced:
            return "force"
        if record["state"] == "absent":
            return "maintenance"
        return "drain"

    def _escalate(self, members):
        """The persistence ladder: once ``persistence_grace`` seconds of the wait
        have passed, a drained target still holding sessions goes to MAINT,
        where HAProxy no longer honours cookies, stick tables or use-server.
        No capacity guard is needed: it is out of rotation either way."""
        request = self._request
        grace = request.options.get("persistence_grace") if request is not None else None
        if grace is None or request.state != "drained" or self.clock() - self._wait_started < grace:
            return
        due = [m for m in members if request.matches(m) and m.key not in self._escalated
               and m.state == "drained" and m.sessions > request.drain_threshold]
        for member in due:
            self.transport.set_state(member.container, member.name, "absent")
            self._escalated.add(member.key)
        if due:
            self._save_states(set(m.container for m in due))

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
                       health_check=checked, agent_check=False)
        return Member(container, selector.name, selector.address, selector.port, state="absent",
                      weight=None, sessions=0, health="unknown", details=details)

    def check_plan(self, plan, members, request):
        """Refuse, before anything is written, what HAProxy would accept but
        not carry out: bits inherited from a tracked server (or DNS) cannot be
        cleared on this server; a socket below level admin; a server-state-file
        or agent memory that cannot be written.  Warn about agents this run
        cannot keep quiet."""
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
        if plan.changes and self.save_state:
            self._state_files(plan.containers)
        if any(self._disables_agent(c) for c in plan.changes):
            self.agents.check_writable()
        self._warn_about_agents(plan, request)

    def _warn_about_agents(self, plan, request):
        changed = set(c.member.key for c in plan.changes)
        for member in plan.targets:
            if not member.details.get("agent_check"):
                continue
            if request.state != "present" and member.details.get("agent_enabled") is None:
                self.warn("server %s/%s: has an agent check, which the stats page cannot turn off, so an agent "
                          "answering 'ready' undoes the %s; use socket (the runtime API), which disables the "
                          "agent while the server is out" % (member.key + (request.state,)))
            elif (request.state == "present" and member.key not in changed
                  and member.details.get("agent_enabled") is False and self.agents.holds(self._agent_key(member))):
                self.warn("server %s/%s: somebody else put it back in rotation, and its agent check is still "
                          "disabled since gentle.lb drained it; enable it with 'enable agent %s/%s'"
                          % (member.key + member.key))

    def _disables_agent(self, change):
        member = change.member
        return (change.state in ("drained", "absent") and bool(member.details.get("agent_check"))
                and member.details.get("agent_enabled") is True)

    def _agent_key(self, member):
        return "%s %s/%s" % (self.transport.identity_key(), member.container, member.name)

    # --- writes

    def prepare(self, changes, request):
        """Remember, before the first write, the agents this run disables: if
        the memory cannot be written, nothing has been changed yet."""
        keys = [self._agent_key(c.member) for c in changes if self._disables_agent(c)]
        if keys:
            self.agents.remember(keys)

    def apply(self, change, request):
        member = change.member
        backend, server = member.key
        if change.add:
            self.transport.add_server(backend, server, member.address, member.port,
                                      member.details.get("health_check"))
            if change.weight is not None:
                self.transport.set_weight(backend, server, change.weight)
            self.transport.set_state(backend, server, "present")
        elif change.state == "present":
            if change.weight is not None and change.weight != member.weight:
                self.transport.set_weight(backend, server, change.weight)
            if member.state != "present":
                self.transport.set_state(backend, server, "present")
            self._restore_agent(member)
            if member.state == "absent" and member.details.get("health_check"):
                self._left_maintenance.add(member.key)
        else:
            # The agent first: one answering "ready" would undo the new state.
            if self._disables_agent(change):
                self.transport.set_agent(backend, server, False)
            self.transport.set_state(backend, server, change.state)
        self._save_states([backend])

    def _restore_agent(self, member):
        """``present`` enables an agent gentle.lb disabled, and only that one."""
        if not member.details.get("agent_check"):
            return
        key = self._agent_key(member)
        if self.agents.holds(key):
            if member.details.get("agent_enabled") is False:
                self.transport.set_agent(member.container, member.name, True)
            self.agents.forget(key)
        elif member.details.get("agent_enabled") is False:
            self.warn("server %s/%s: its agent check is disabled, and not by gentle.lb, so it stays disabled; "
                      "enable it with 'enable agent %s/%s' if the agent should have its say again"
                      % (member.key + member.key))

    def _warn_if_the_gate_is_blind(self, members):
        """Leaving MAINT, HAProxy sets the check's health to ``rise``: "UP x/y"
        until a check passes, then "UP".  With fall 1 both read "UP".  (In MAINT
        ``show stat`` leaves rise and fall empty, so this is seen once out.)"""
        for member in members:
            if member.key in self._left_maintenance and member.details.get("check_fall") == 1:
                self.warn("server %s/%s: its health check has fall 1, so HAProxy reports it UP as soon as it "
                          "leaves maintenance, before any check ran, and present cannot tell that from a passing "
                          "check; it returned on HAProxy's word; give the server 'fall 2' or more (HAProxy's "
                          "default is 3) for a real health gate" % member.key)

    def force(self, members):
        for member in members:
            self._forced.add(member.key)
            self.transport.shutdown_sessions(member.container, member.name)
        note = "'shutdown sessions server' sent for %s" % ", ".join("%s/%s" % m.key for m in members)
        if self.master is not None:
            old = self._end_old_sessions(set(m.key for m in members))
            if old:
                note += "; %s" % old
        return note

    def _end_old_sessions(self, keys):
        """Old workers refuse ``shutdown sessions server`` (their proxies are
        stopping: "Proxy is disabled."), but end single streams found with
        ``show sess``."""
        ended = []
        for process in self.master.processes():
            if process["role"] != "old":
                continue
            text = self.master.worker(process["pid"], "show sess")
            streams = [sid for sid, backend, server in parse_show_sess(text or "") if (backend, server) in keys]
            for stream in streams:
                self.master.worker(process["pid"], "shutdown session %s" % stream)
            if streams:
                ended.append("%d in old worker %d" % (len(streams), process["pid"]))
        if not ended:
            return None
        return "'shutdown session' sent for the sessions old workers held (%s)" % ", ".join(ended)

    # --- server states across a reload

    def _server_state_config(self):
        """(configuration paths, ServerStateConfig or None, why not), read once."""
        if self._config is None:
            paths = self.config or self._running_config()
            if not paths:
                self._config = ([], None, "HAProxy's configuration is not known where the module runs (%s is "
                                          "not a local unix socket, and no HAProxy process answering it was "
                                          "found here)" % self.transport.label)
                return self._config
            try:
                self._config = (paths, ServerStateConfig.parse(config_files(paths)), None)
            except (IOError, OSError) as error:
                self._config = (paths, None, "config %s: cannot be read (%s)"
                                % (getattr(error, "filename", None) or ", ".join(paths), _strerror(error)))
        return self._config

    def _running_config(self):
        """The files the HAProxy answering the socket was started with; else,
        for a local unix socket, Debian's default path; else None (a TCP
        socket or the stats page may well be another host's)."""
        try:
            pid = _int(self.transport.info().get("Pid"), None)
        except LBError:
            pid = None
        running = running_config_paths(pid) if pid else None
        if running:
            return running
        if isinstance(self.transport, RuntimeAPI) and not self.transport.tcp:
            return [DEFAULT_CONFIG]
        return None

    def _state_files(self, backends):
        """{server-state-file: backend (its own file) or None (global)} that
        save_state writes for changes in ``backends``; raises before any write
        when there is none, or it cannot be written."""
        if self.server_state_file:
            check_writable("server_state_file", self.server_state_file)
            return {self.server_state_file: None}
        paths, config, error = self._server_state_config()
        if config is None:
            raise CommandError("save_state: %s; set config to HAProxy's configuration, or server_state_file "
                               "to its server-state-file" % error)
        files, missing = {}, []
        for backend in sorted(backends):
            path, why = config.loaded_file(backend)
            if path is None:
                missing.append(why)
            else:
                files[path] = backend if config.backends[backend].get("load") == "local" else None
        if not files:
            raise InvalidInputError(
                "save_state: %s, so a reload would not load what is saved; add 'server-state-file "
                "/var/lib/haproxy/server-state' to the global section and 'load-server-state-from-file global' "
                "to the defaults of %s, or set server_state_file" % ("; ".join(missing), ", ".join(paths)))
        for why in missing:
            self.warn("save_state: %s, so a reload still drops its servers' runtime states; add "
                      "'load-server-state-from-file global' to it" % why)
        for path in files:
            check_writable("server_state_file", path)
        return files

    def _save_states(self, backends):
        if self.save_state:
            save_server_states(self.transport, self._state_files(backends))

    def server_state_report(self, containers):
        """Whether a reload of this HAProxy keeps runtime states (what
        haproxy_member_info returns as ``server_state``)."""
        paths, config, error = self._server_state_config()
        backends = containers or sorted(set(m.container for m in self._members))
        if config is None:
            return dict(config=paths, file=None, load={}, kept_on_reload=None, reason=error)
        load, reasons = {}, []
        for backend in backends:
            load[backend], why = config.loaded_file(backend)
            if why:
                reasons.append(why)
        global_file = config._resolve(config.global_file) if config.global_file else None
        return dict(config=config.files, file=global_file, load=load,
                    kept_on_reload=(not reasons) if backends else None, reason="; ".join(reasons) or None)

    def describe_extra(self, containers):
        return dict(server_state=self.server_state_report(containers))

    def result_warnings(self, result, request):
        """After a drain: a reload during the wait that hid an old process's
        sessions, and servers that persistent clients kept reaching."""
        if request is None or not request.wait or request.state == "present":
            return []
        warnings = []
        if self.master is None and self._first_identity is not None:
            now = self.identity()
            if now and now.get("pid") != self._first_identity.get("pid"):
                warnings.append(
                    "HAProxy was reloaded or restarted during the wait (pid %s -> %s): the old process may still "
                    "serve sessions of %s that the stats socket no longer shows; in master-worker mode set "
                    "master_socket, so that the wait counts them"
                    % (self._first_identity.get("pid"), now.get("pid"),
                       ", ".join("%s/%s" % (m["container"], m["name"]) for m in result.get("members") or [])))
        for entry in result.get("members") or []:
            if entry.get("persistent_arrivals") and entry.get("drain_ended_by") is None:
                warnings.append(
                    "server %s/%s: %d session(s) reached it through persistence (a cookie, a stick table or "
                    "use-server) while it was drained, so it may never drain by itself; set persistence_grace "
                    "to stop honouring persistence after that many seconds"
                    % (entry["container"], entry["name"], entry["persistent_arrivals"]))
        return warnings


def backend_from(connection, save_state=False, server_state_file=None, agent_memory=DEFAULT_AGENT_MEMORY):
    """The HAProxyBackend for a module's options: ``connection`` as
    specs.haproxy_connection() returns it (transport, master_socket, config)."""
    connection = dict(connection)
    master_socket = connection.pop("master_socket", None)
    config = connection.pop("config", None)
    transport = transport_from(**connection)
    master = MasterCLI(master_socket, connection.get("timeout", 5.0)) if master_socket else None
    return HAProxyBackend(transport, master=master, config=config, save_state=save_state,
                          server_state_file=server_state_file, agent_memory=AgentMemory(agent_memory))
