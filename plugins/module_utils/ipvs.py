# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LVS/IPVS for gentle.lb: the ``ipvsadm`` driver, its parsers, the pre-drain
weight memory and ``IPVSBackend``, the core's view of a director.

Facts this file relies on (observed on Linux 6.1 with ipvsadm 1.31, see
docs/ipvs.md):

* ``ipvsadm -e`` starts every edit from ``-g -w 1``, no thresholds, tunnel
  ipip: every edit here restates the destination's forwarding method,
  thresholds and tunnel options, read just before.
* ``-S`` does not save thresholds, so the table is read with ``-Ln --exact``
  in the ``--tun-info``, ``--thresholds`` and ``--persistent-conn`` formats
  and the records are merged; all listings of one read come from one
  ``ipvsadm -R`` run, which executes ``-L`` lines too.  Lines are split on
  whitespace (IPv4 columns are fixed-width, IPv6 ones are not).
* ``ipvsadm`` is always run with an argument list, ``LC_ALL=C`` and a
  deadline; its rc and stderr are mapped onto the core's errors.

Never imports ansible.module_utils.basic; runs on Python 3.9+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import math
import os
import re
import socket
import subprocess
import tempfile
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not Linux: IPVS does not exist there either
    fcntl = None

import ipaddress

from ansible_collections.gentle.lb.plugins.module_utils.member import (
    Backend,
    CommandError,
    InvalidInputError,
    Member,
    NotFoundError,
    PermissionDeniedError,
    Selector,
    UnreachableError,
)


DEFAULT_STATE_FILE = "/var/lib/gentle.lb/ipvs-weights.json"
MAX_WEIGHT = 65535
MAX_FWMARK = 4294967295
FWMARK_RE = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")

FORWARDING_FLAGS = {"route": "-g", "masq": "-m", "tunnel": "-i", "local": "-g"}
FORWARD_NAMES = {"Route": "route", "Masq": "masq", "Tunnel": "tunnel", "Local": "local"}
TUNNEL_TYPES = ("ipip", "gue", "gre")
TUNNEL_CHECKSUMS = ("nocsum", "csum", "remcsum")
PROTOCOLS = ("tcp", "udp", "sctp")
PROTOCOL_FLAGS = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}
LISTING_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp", "FWM": "fwmark"}

# Where keepalived and ldirectord keep the configuration that makes them own
# virtual services (Debian, RHEL and SUSE paths).
MANAGER_CONFIGS = (
    ("keepalived", "/etc/keepalived/keepalived.conf", "virtual_server"),
    ("ldirectord", "/etc/ha.d/ldirectord.cf", "virtual"),
    ("ldirectord", "/etc/ldirectord.cf", "virtual"),
)
MANAGER_PROCESSES = ("keepalived", "ldirectord")


# --------------------------------------------------------------------------
# Addresses and virtual-service specifications
# --------------------------------------------------------------------------

def plain_text(text, what):
    """Refuse a name that is not a plain string: blanks around it, or a line
    break, tab or other control character anywhere in it.  The whole string is
    the name (no stripping), so ``"10.0.0.1\\n"`` is refused rather than read
    as 10.0.0.1; the value is shown quoted, so the message stays one line."""
    if not isinstance(text, str) or not text:
        raise InvalidInputError("%s %r: empty or not a string; give it as text" % (what, text))
    if text != text.strip() or not text.isprintable():
        raise InvalidInputError("%s %r: has blanks around it or a line break or control character in it; "
                                "give the value alone" % (what, text))
    return text


def normalize_address(text, what="address"):
    """Return (address, family) with IPv6 compressed and lower-case.

    Accepts ``10.0.0.1``, ``2001:DB8::1`` and ``[2001:db8::1]``, as the whole
    string; refuses host names (ipvsadm lists addresses only, so a name could
    never match), ports and IPv6 zone indexes."""
    if not isinstance(text, str):
        raise InvalidInputError("%s %r: not an IP address; give an IPv4 or IPv6 address" % (what, text))
    raw = plain_text(text, what)
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:
        raise InvalidInputError("%s %s: IPv6 zone indexes are not used by IPVS; give the address "
                                "without %%zone" % (what, raw))
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        hint = "give an IPv4 or IPv6 address (IPVS lists addresses, not host names)"
        if text.count(":") == 1 and "." in text:
            hint = "give the address alone and the port in the port option"
        raise InvalidInputError("%s %s: not an IP address; %s" % (what, raw, hint))
    if parsed.version == 6:
        # inet_ntop, as ipvsadm prints it (Python's own text for IPv4-mapped
        # addresses differs between versions).
        return socket.inet_ntop(socket.AF_INET6, parsed.packed), 6
    return parsed.compressed, 4


def check_port(value, what="port", allow_zero=True):
    """A port number as an int, 0-65535 (1-65535 when allow_zero is false):
    an int, or a string of digits only (no sign, no blanks)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or \
            isinstance(value, str) and not (value.isdigit() and value.isascii()):
        raise InvalidInputError("%s %r: not a port number; give 0-65535" % (what, value))
    port = int(value)
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise InvalidInputError("%s %s: out of range; give %d-65535" % (what, value, low))
    return port


def endpoint(address, port):
    """``10.0.0.1:80`` or ``[2001:db8::1]:80`` (ipvsadm's own notation)."""
    if ":" in address:
        return "[%s]:%d" % (address, port)
    return "%s:%d" % (address, port)


def split_endpoint(text, what="address"):
    """``10.0.0.1:80`` / ``[2001:db8::1]:80`` -> (address, family, port)."""
    plain_text(text, what)
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1:close + 2] != ":":
            raise InvalidInputError("%s %s: write IPv6 as [ADDRESS]:PORT" % (what, text))
        host, port = text[1:close], text[close + 2:]
    else:
        if text.count(":") != 1:
            raise InvalidInputError("%s %s: write ADDRESS:PORT, with IPv6 in brackets "
                                    "([2001:db8::1]:53)" % (what, text))
        host, port = text.split(":")
    address, family = normalize_address(host, what)
    return address, family, check_port(port, what)


class ServiceKey(object):
    """The identity of one virtual service: protocol + address + port, or a
    firewall mark (per address family).  ``name`` is the canonical spelling used
    as the container name everywhere: ``tcp:10.0.0.100:80``,
    ``udp:[2001:db8::1]:53``, ``sctp:10.0.0.1:3868``, ``fwmark:7``, ``fwmark6:7``."""

    __slots__ = ("protocol", "address", "port", "fwmark", "family")

    def __init__(self, protocol, address=None, port=None, fwmark=None, family=4):
        self.protocol = protocol
        self.address = address
        self.port = port
        self.fwmark = fwmark
        self.family = family

    @property
    def name(self):
        if self.protocol == "fwmark":
            return "fwmark%s:%d" % ("6" if self.family == 6 else "", self.fwmark)
        return "%s:%s" % (self.protocol, endpoint(self.address, self.port))

    def args(self):
        """The ipvsadm options naming this service."""
        if self.protocol == "fwmark":
            return ["-f", str(self.fwmark)] + (["-6"] if self.family == 6 else [])
        return [PROTOCOL_FLAGS[self.protocol], endpoint(self.address, self.port)]

    def __eq__(self, other):
        return isinstance(other, ServiceKey) and self.name == other.name

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return "ServiceKey(%s)" % self.name


SPEC_HELP = ("write PROTOCOL:ADDRESS:PORT (tcp:192.168.100.11:80, udp:[2001:db8::1]:53, "
             "sctp:10.0.0.1:3868) or fwmark:MARK / fwmark6:MARK")


def parse_service_spec(text):
    """Parse a user's virtual-service name into a ServiceKey.

    Accepted (case-insensitive): ``tcp:ADDR:PORT``, ``udp:...``, ``sctp:...``
    (IPv6 in brackets), ``fwmark:N``, ``fwmark6:N``, and the way
    ``ipvsadm -Ln`` prints them: ``TCP 10.0.0.100:80``, ``FWM 7``, ``FWM 7 IPv6``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("virtual_service %r: empty; %s" % (text, SPEC_HELP))
    raw = plain_text(text, "virtual_service")
    words = text.split()
    if len(words) > 1:
        # The listing's own spelling: "TCP  10.0.0.100:80", "FWM  2 IPv6".
        proto = LISTING_PROTOCOLS.get(words[0].upper())
        if proto == "fwmark" and len(words) in (2, 3) and (len(words) == 2 or words[2].lower() == "ipv6"):
            return _fwmark_key(words[1], 6 if len(words) == 3 else 4, raw)
        if proto in PROTOCOLS and len(words) == 2:
            return _address_key(proto, words[1], raw)
        raise InvalidInputError("virtual_service %s: not understood; %s" % (raw, SPEC_HELP))
    head, sep, rest = text.partition(":")
    head = head.lower()
    if not sep:
        raise InvalidInputError("virtual_service %s: no protocol; %s" % (raw, SPEC_HELP))
    if head in ("fwmark", "fwm"):
        return _fwmark_key(rest, 4, raw)
    if head in ("fwmark6", "fwm6"):
        return _fwmark_key(rest, 6, raw)
    if head in PROTOCOLS:
        return _address_key(head, rest, raw)
    raise InvalidInputError("virtual_service %s: unknown protocol %s; %s" % (raw, head, SPEC_HELP))


def _fwmark_key(text, family, raw):
    # Decimal or 0x-hexadecimal digits only: int() alone would also take
    # blanks, signs and underscores.
    if not FWMARK_RE.fullmatch(text):
        raise InvalidInputError("virtual_service %s: firewall mark %s is not a number; %s"
                                % (raw, text, SPEC_HELP))
    mark = int(text, 16) if text[:2].lower() == "0x" else int(text, 10)
    if not 1 <= mark <= MAX_FWMARK:
        raise InvalidInputError("virtual_service %s: firewall mark out of range; give 1-%d"
                                % (raw, MAX_FWMARK))
    return ServiceKey("fwmark", fwmark=mark, family=family)


def _address_key(proto, text, raw):
    host = port = None
    if text.startswith("["):
        close = text.find("]")
        if close > 0 and text[close + 1:close + 2] == ":":
            host, port = text[1:close], text[close + 2:]
        elif close > 0:
            raise InvalidInputError("virtual_service %s: no port; write %s:[ADDRESS]:PORT (port 0 for "
                                    "a persistent all-ports service)" % (raw, proto))
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif ":" not in text:
        raise InvalidInputError("virtual_service %s: no port; write %s:ADDRESS:PORT (port 0 for a "
                                "persistent all-ports service)" % (raw, proto))
    else:
        raise InvalidInputError("virtual_service %s: an IPv6 address must be in brackets, as in "
                                "%s:[2001:db8::1]:53" % (raw, proto))
    if host is None:
        raise InvalidInputError("virtual_service %s: not understood; %s" % (raw, SPEC_HELP))
    address, family = normalize_address(host, "virtual_service %s: address" % raw)
    port = check_port(port, "virtual_service %s: port" % raw)
    return ServiceKey(proto, address=address, port=port, family=family)


def service_names(specs):
    """Canonical container names from the user's list (order kept, duplicates dropped)."""
    if specs is None:
        return None
    if isinstance(specs, str):
        specs = [specs]
    names = []
    for spec in specs:
        name = parse_service_spec(spec).name
        if name not in names:
            names.append(name)
    return names or None


def selector(address, port=None):
    """The core's Selector for a real server address (and port); None selects all."""
    port = None if port is None else check_port(port)
    if address is None:
        return None if port is None else Selector(port=port)
    normalized, _family = normalize_address(address)
    return Selector(address=normalized, port=port)


def selectors(addresses, port=None):
    """One Selector per real server address (all on ``port`` if given); an
    empty list selects every destination (on ``port``)."""
    if addresses is None:
        addresses = []
    elif not isinstance(addresses, list):
        addresses = [addresses]
    if not addresses:
        found = selector(None, port)
        return [found] if found is not None else []
    return [selector(address, port) for address in addresses]


def member_key(container, name):
    """The weight memory's key for one destination."""
    return "%s %s" % (container, name)


# --------------------------------------------------------------------------
# Records and parsers
# --------------------------------------------------------------------------

class Service(object):
    """One virtual service as listed."""

    def __init__(self, key, scheduler=None):
        self.key = key
        self.scheduler = scheduler
        self.persistent = None      # timeout in seconds, or None
        self.mask = None            # netmask (IPv4) or prefix length (IPv6), as printed
        self.ops = False            # one-packet scheduling
        self.pe = None              # persistence engine (sip)
        self.sched_flags = []       # -b flags: sh-fallback, sh-port, mh-fallback, mh-port
        self.dests = {}             # endpoint name -> Dest, in listing order (dicts keep order)
        self.stats = None
        self.rates = None

    @property
    def name(self):
        return self.key.name

    def as_dict(self):
        entry = dict(name=self.name, protocol=self.key.protocol, address=self.key.address,
                     port=self.key.port, fwmark=self.key.fwmark,
                     family="ipv6" if self.key.family == 6 else "ipv4",
                     scheduler=self.scheduler, persistent=self.persistent, mask=self.mask,
                     ops=self.ops, pe=self.pe, scheduler_flags=list(self.sched_flags),
                     members=len(self.dests))
        if self.stats is not None:
            entry["stats"] = dict(self.stats)
        if self.rates is not None:
            entry["rates"] = dict(self.rates)
        return entry


class Dest(object):
    """One destination (real server) of a virtual service, merged from the
    listings that were read.  Fields a listing did not provide stay None."""

    FIELDS = ("forwarding", "weight", "active", "inactive", "persistent", "upper", "lower",
              "tunnel_type", "tunnel_port", "tunnel_checksum", "stats", "rates")
    __slots__ = ("address", "family", "port", "name") + FIELDS

    def __init__(self, address, family, port, name=None):
        self.address = address
        self.family = family
        self.port = port
        self.name = name or endpoint(address, port)
        self.forwarding = self.weight = self.active = self.inactive = self.persistent = None
        self.upper = self.lower = self.tunnel_type = self.tunnel_port = self.tunnel_checksum = None
        self.stats = self.rates = None

    def merge(self, other):
        for field in self.FIELDS:
            value = getattr(other, field)
            if value is not None:
                setattr(self, field, value)


STATS_COLUMNS = ("conns", "inpkts", "outpkts", "inbytes", "outbytes")
RATE_COLUMNS = ("cps", "inpps", "outpps", "inbps", "outbps")


def _listing_format(header_words):
    words = set(header_words)
    if "TunnelInfo" in words:
        return "tun_info"
    if "Uthreshold" in words:
        return "thresholds"
    if "PersistConn" in words:
        return "persistent_conn"
    if "CPS" in words:
        return "rate"
    if "Conns" in words:
        return "stats"
    if "Forward" in words:
        return "default"
    return None


class ParseError(CommandError):
    pass


def _bad_line(number, line, why):
    return ParseError("ipvsadm -Ln: unexpected output on line %d (%s): %r; nothing was changed, "
                      "report this with the output of ipvsadm --version" % (number, why, line.strip()))


def parse_listing(text, with_format=False):
    """Parse one ``ipvsadm -Ln [--exact] [FORMAT]`` output into a list of
    Services (with ``with_format``: (format, Services)).  The format is
    recognised from the column headers.  Any line that does not fit raises
    ParseError: acting on a misread table is worse than stopping."""
    services = []
    fmt = None
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if line.startswith("IP Virtual Server version"):
            continue
        if words[0] == "Prot" or (words[0] == "->" and len(words) > 1 and words[1] == "RemoteAddress:Port"):
            fmt = _listing_format(words) or fmt
            continue
        if fmt is None:
            raise _bad_line(number, line, "no column header before it")
        if words[0] == "->":
            if current is None:
                raise _bad_line(number, line, "a destination before any service")
            dest = _parse_dest(words[1:], fmt, current.key, number, line)
            if dest.name in current.dests:
                current.dests[dest.name].merge(dest)
            else:
                current.dests[dest.name] = dest
            continue
        current = _parse_service(words, fmt, number, line)
        services.append(current)
    if with_format:
        return fmt, services
    return services


_ENDPOINTS = {}


def listed_endpoint(text):
    """(address, family, port, canonical name) of an endpoint as ipvsadm lists
    it, or None.  inet_pton/inet_ntop (what ipvsadm itself uses), cached:
    every listing of a big table repeats the same thousand endpoints."""
    found = _ENDPOINTS.get(text)
    if found is not None:
        return found
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        family = socket.AF_INET6
    else:
        host, sep, port = text.partition(":")
        family = socket.AF_INET
    if not sep or not (port.isdigit() and port.isascii()) or len(port) > 5 or int(port) > 65535:
        return None
    try:
        address = socket.inet_ntop(family, socket.inet_pton(family, host))
    except (OSError, ValueError):
        return None
    port = int(port)
    found = (address, 6 if family == socket.AF_INET6 else 4, port, endpoint(address, port))
    if len(_ENDPOINTS) < 100000:
        _ENDPOINTS[text] = found
    return found


def _int(word, number, line, what):
    if word.isdigit() and word.isascii():
        return int(word)
    if word.startswith("-") and word[1:].isdigit():
        raise _bad_line(number, line, "%s is negative" % what)
    raise _bad_line(number, line, "%s is not a number" % what)


def _parse_service(words, fmt, number, line):
    proto = LISTING_PROTOCOLS.get(words[0])
    if proto is None or len(words) < 2:
        raise _bad_line(number, line, "unknown protocol")
    rest = words[2:]
    if proto == "fwmark":
        family = 4
        if rest and rest[0] == "IPv6":
            family = 6
            rest = rest[1:]
        try:
            key = _fwmark_key(words[1], family, words[1])
        except InvalidInputError:
            raise _bad_line(number, line, "not a firewall mark")
    else:
        found = listed_endpoint(words[1])
        if found is None:
            raise _bad_line(number, line, "not a service address")
        key = ServiceKey(proto, address=found[0], port=found[2], family=found[1])
    if fmt in ("stats", "rate"):
        columns = STATS_COLUMNS if fmt == "stats" else RATE_COLUMNS
        if len(rest) != len(columns):
            raise _bad_line(number, line, "expected %d counters" % len(columns))
        service = Service(key)
        values = dict((c, _int(w, number, line, c)) for c, w in zip(columns, rest))
        if fmt == "stats":
            service.stats = values
        else:
            service.rates = values
        return service
    if not rest:
        raise _bad_line(number, line, "no scheduler")
    service = Service(key, scheduler=rest[0])
    flags = rest[1:]
    index = 0
    while index < len(flags):
        word = flags[index]
        if word in ("persistent", "mask", "pe"):
            if index + 1 >= len(flags):
                raise _bad_line(number, line, "%s without a value" % word)
            value = flags[index + 1]
            if word == "persistent":
                service.persistent = _int(value, number, line, "persistence timeout")
            elif word == "mask":
                service.mask = value
            else:
                service.pe = value
            index += 2
            continue
        if word == "ops":
            service.ops = True
        elif word.startswith("(") and word.endswith(")"):
            service.sched_flags = [f for f in word[1:-1].split(",") if f]
        else:
            raise _bad_line(number, line, "unknown service flag %s" % word)
        index += 1
    return service


DEST_COLUMNS = {
    "default": ("forward", "weight", "active", "inactive"),
    "tun_info": ("forward", "tunnel", "weight", "active", "inactive"),
    "thresholds": ("upper", "lower", "active", "inactive"),
    "persistent_conn": ("weight", "persistent", "active", "inactive"),
    "stats": STATS_COLUMNS,
    "rate": RATE_COLUMNS,
}


def _parse_dest(words, fmt, service_key, number, line):
    if not words:
        raise _bad_line(number, line, "no destination address")
    found = listed_endpoint(words[0])
    if found is None:
        raise _bad_line(number, line, "not a destination address")
    columns = DEST_COLUMNS[fmt]
    values = words[1:]
    if len(values) != len(columns):
        raise _bad_line(number, line, "expected %d columns" % len(columns))
    dest = Dest(found[0], found[1], found[2], found[3])
    if fmt in ("stats", "rate"):
        counters = dict((c, _int(w, number, line, c)) for c, w in zip(columns, values))
        if fmt == "stats":
            dest.stats = counters
        else:
            dest.rates = counters
        return dest
    for column, word in zip(columns, values):
        if column == "forward":
            if word not in FORWARD_NAMES:
                raise _bad_line(number, line, "unknown forwarding method %s" % word)
            dest.forwarding = FORWARD_NAMES[word]
        elif column == "tunnel":
            _parse_tunnel(dest, word, number, line)
        else:
            setattr(dest, column, _int(word, number, line, column))
    if fmt == "default" and dest.forwarding == "tunnel":
        # An ipvsadm without --tun-info (before 1.30) only knows ipip tunnels.
        dest.tunnel_type = "ipip"
    return dest


def _parse_tunnel(dest, word, number, line):
    """``n/a``, ``ipip``, ``gue:6080:-c``, ``gre:+c``, ``gue:6081:r+c``."""
    if word == "n/a":
        return
    parts = word.split(":")
    kind = parts[0]
    if kind not in TUNNEL_TYPES:
        raise _bad_line(number, line, "unknown tunnel type %s" % kind)
    dest.tunnel_type = kind
    flags = None
    if kind == "gue":
        if len(parts) != 3:
            raise _bad_line(number, line, "gue tunnel without port and flags")
        dest.tunnel_port = _int(parts[1], number, line, "tunnel port")
        flags = parts[2]
    elif kind == "gre":
        if len(parts) != 2:
            raise _bad_line(number, line, "gre tunnel without flags")
        flags = parts[1]
    elif len(parts) != 1:
        raise _bad_line(number, line, "ipip tunnel with options")
    if flags is not None:
        if "r" in flags:
            dest.tunnel_checksum = "remcsum"
        elif "+c" in flags:
            dest.tunnel_checksum = "csum"
        elif "-c" in flags:
            dest.tunnel_checksum = "nocsum"
        else:
            raise _bad_line(number, line, "unknown tunnel flags %s" % flags)


def merge_listings(listings):
    """Merge Services parsed from several formats into one {name: Service}."""
    merged = {}
    for services in listings:
        for service in services:
            known = merged.get(service.name)
            if known is None:
                merged[service.name] = service
                continue
            if known.scheduler is None and service.scheduler is not None:
                for attr in ("scheduler", "persistent", "mask", "ops", "pe", "sched_flags"):
                    setattr(known, attr, getattr(service, attr))
            if service.stats is not None:
                known.stats = service.stats
            if service.rates is not None:
                known.rates = service.rates
            for name, dest in service.dests.items():
                if name in known.dests:
                    known.dests[name].merge(dest)
                else:
                    known.dests[name] = dest
    return merged


# --------------------------------------------------------------------------
# The ipvsadm driver
# --------------------------------------------------------------------------

def find_ipvsadm(path=None):
    """The ipvsadm executable from PATH (as documented), or None."""
    search = os.environ.get("PATH", "") if path is None else path
    for directory in search.split(os.pathsep):
        if not directory:
            continue
        candidate = os.path.join(directory, "ipvsadm")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


C_LOCALE = dict(LC_ALL="C", LANG="C", LANGUAGE="C")


# One ipvsadm run may take this long at most (the ``timeout`` option): a
# listing of 1,000 destinations takes about 0.1 s even under user-mode Linux.
DEFAULT_TIMEOUT = 30.0
# After the kill, how long to wait for the process to be gone; a process stuck
# in the kernel may not die at once, and the module must not hang on it.
KILL_GRACE = 5.0


def spawn_runner(argv, timeout=DEFAULT_TIMEOUT, stdin=None):
    """The runner the modules use: an argument list (never a shell), the C
    locale so ipvsadm's messages are the ones this file knows, ``stdin`` (text)
    or nothing as its input, and an overall deadline: past ``timeout`` seconds
    the process is killed and ``subprocess.TimeoutExpired`` raised
    (Ipvsadm.run says what it means).

    Unlike AnsibleModule.run_command it passes no preexec_fn, so Python (3.10+)
    starts ipvsadm with vfork instead of copying the whole module process with
    fork: a drain issues one ipvsadm per destination, and on a busy director each
    fork of a large Python process costs far more than ipvsadm itself
    (bench/ipvs_scale.py: 4.8 s -> 1.6 s for 10 destinations).  That is the one
    entry in tests/sanity/ignore-2.21.txt (pylint's ansible-bad-function)."""
    environment = dict(os.environ)
    environment.update(C_LOCALE)
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
                               close_fds=True)
    try:
        out, err = process.communicate(None if stdin is None else stdin.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        try:
            process.communicate(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
        raise
    return process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def stderr_message(stderr):
    """ipvsadm's own words, one line: the noise of modprobe and the generic
    'Are you sure...' hint are dropped when something more precise is there."""
    lines = [" ".join(line.split()) for line in stderr.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("modprobe:")
              and not line.startswith("Are you sure that IP Virtual Server")]
    return "; ".join(useful or lines) or "no error message"


class Ipvsadm(object):
    """Runs ipvsadm through ``runner(argv, timeout, stdin) -> (rc, stdout,
    stderr)`` (spawn_runner in the modules; a fake in the unit tests), each run
    bounded by ``timeout`` seconds."""

    def __init__(self, runner, binary=None, timeout=DEFAULT_TIMEOUT):
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0 or math.isnan(timeout):
            raise InvalidInputError("timeout %r: must be above 0 seconds" % (timeout,))
        self.runner = runner
        self.timeout = float(timeout)
        self._binary = binary
        self.tun_info = True
        self.calls = 0

    @property
    def binary(self):
        if self._binary is None:
            found = find_ipvsadm()
            if found is None:
                raise CommandError(
                    "ipvsadm: not installed on this director (not found in PATH=%s); install the "
                    "ipvsadm package (apt-get install ipvsadm / dnf install ipvsadm) or put it in "
                    "PATH" % os.environ.get("PATH", ""))
            self._binary = found
        return self._binary

    def run(self, args, service=None, dest=None):
        """Run ipvsadm once; raise the core's error for a non-zero exit status."""
        rc, out, err = self._spawn(args)
        if rc != 0:
            error = classify_failure(args, rc, err, service, dest)
            error.stderr = err
            raise error
        return out

    def _spawn(self, args, stdin=None, shown=None, writes=True):
        """(rc, stdout, stderr) of one ipvsadm run; ``shown`` is how error
        messages name the command, ``writes`` whether it may change the table."""
        argv = [self.binary] + list(args)
        self.calls += 1
        try:
            return self.runner(argv, self.timeout, stdin)
        except subprocess.TimeoutExpired:
            raise UnreachableError(timeout_message(shown or args, self.timeout, writes))
        except (IOError, OSError) as error:
            if error.errno in (errno.EACCES, errno.EPERM):
                raise PermissionDeniedError("ipvsadm: cannot run %s (%s); run the task as root "
                                            "(become: true)" % (argv[0], error.strerror))
            raise CommandError("ipvsadm: cannot run %s (%s); install the ipvsadm package"
                               % (argv[0], error))

    def listing(self, fmt):
        """``-Ln --exact`` in one format (tun_info, thresholds,
        persistent_conn, stats, rate or default), as [Service]."""
        return self.listings([fmt])[fmt]

    def listings(self, formats, services=None):
        """Several ``-Ln --exact`` listings in one ipvsadm process:
        ``{format: [Service]}``, each format of the whole table, or of each of
        ``services`` (ServiceKeys) only.

        ``ipvsadm -R`` runs the ``-L`` lines it reads one after the other, so
        one process (about 40 ms under user-mode Linux, most of it ipvsadm's
        start-up) replaces one per format and service.  It reports only its
        last line's exit status, so every listing asked for is accounted for
        in the output: a service that does not exist is left out of the result
        (the caller names it); anything else missing is an error."""
        if "tun_info" in formats and not self.tun_info:
            return self._without_tun_info(formats, services)
        wanted = [(fmt, key.name if key is not None else None, key)
                  for key in (services or [None]) for fmt in formats]
        lines = [" ".join(listing_args(fmt, key)) for fmt, _name, key in wanted]
        shown = ["-R", "(%s)" % "; ".join(lines)]
        rc, out, err = self._spawn(["-R"], "".join(line + "\n" for line in lines), shown, writes=False)
        got = {}
        for block in split_listings(out):
            fmt, parsed = parse_listing(block, with_format=True)
            if services is None:
                got[(fmt, None)] = parsed
            elif len(parsed) == 1:
                got[(fmt, parsed[0].name)] = parsed
            else:
                raise _bad_line(1, block.splitlines()[0], "%d services in the listing of one" % len(parsed))
        missing = [(fmt, name) for fmt, name, _key in wanted if (fmt, name) not in got]
        if missing and not got and "tun-info" in err and "tun_info" in formats:
            # ipvsadm before 1.30 has no --tun-info (and no tunnel types).
            self.tun_info = False
            return self._without_tun_info(formats, services)
        if missing and (services is None or "No such service" not in err):
            if not got:
                error = classify_failure(shown, rc or 255, err)
                error.stderr = err
                raise error
            raise CommandError("ipvsadm %s: listed %d of the %d tables asked for (%s); nothing was changed, "
                               "rerun the task" % (" ".join(shown), len(got), len(wanted), stderr_message(err)))
        # What is still missing are services that do not exist: left out.
        result = dict((fmt, []) for fmt in formats)
        for (fmt, _name), parsed in got.items():
            result[fmt].extend(parsed)
        return result

    def _without_tun_info(self, formats, services):
        plain = ["default" if fmt == "tun_info" else fmt for fmt in formats]
        listed = self.listings(plain, services)
        listed["tun_info"] = listed.pop("default")
        return listed

    def add(self, key, dest_name, options, weight):
        return self.run(["-a"] + key.args() + ["-r", dest_name] + dest_options(options, weight),
                        key.name, dest_name)

    def edit(self, key, dest_name, options, weight):
        return self.run(["-e"] + key.args() + ["-r", dest_name] + dest_options(options, weight),
                        key.name, dest_name)

    def delete(self, key, dest_name):
        return self.run(["-d"] + key.args() + ["-r", dest_name], key.name, dest_name)


LISTING_OPTIONS = {"tun_info": ["--tun-info"], "thresholds": ["--thresholds"],
                   "persistent_conn": ["--persistent-conn"], "stats": ["--stats"], "rate": ["--rate"],
                   "default": []}


def listing_args(fmt, key=None):
    """``-L -n --exact [FORMAT] [SERVICE]`` as a list.  These words become a
    line of ``ipvsadm -R`` input: none may hold a blank or a line break (the
    service's are canonical: addresses from inet_ntop, numbers)."""
    args = ["-L", "-n", "--exact"] + LISTING_OPTIONS[fmt] + (key.args() if key is not None else [])
    for word in args:
        if not word or not word.isprintable() or " " in word:
            raise InvalidInputError("ipvsadm: refusing to pass %r on a line of ipvsadm -R input" % (word,))
    return args


def split_listings(text):
    """One ``ipvsadm -R`` output of several listings -> one text per listing.
    A listing starts with its ``Prot`` column header, or with the version line
    that comes just before it when the whole table is listed."""
    blocks = []
    current = []
    for line in text.splitlines():
        version = line.startswith("IP Virtual Server version")
        header = line.startswith("Prot ") and not (current and current[-1].startswith("IP Virtual Server version"))
        if (version or header) and current:
            blocks.append(current)
            current = []
        current.append(line)
    if current:
        blocks.append(current)
    return ["\n".join(block) + "\n" for block in blocks]


def dest_options(options, weight):
    """The full option set of one destination, for ``-a`` and ``-e``: the
    forwarding method, the weight, both thresholds (an edit resets what is
    omitted) and the tunnel options.  ``ipip`` needs none (the default, and
    the only type an ipvsadm before 1.30 knows)."""
    forwarding = options.get("forwarding") or "route"
    args = [FORWARDING_FLAGS[forwarding], "-w", str(weight),
            "-x", str(options.get("upper_threshold") or 0),
            "-y", str(options.get("lower_threshold") or 0)]
    tunnel_type = options.get("tunnel_type")
    if forwarding == "tunnel" and tunnel_type in ("gue", "gre"):
        args += ["--tun-type", tunnel_type]
        if tunnel_type == "gue":
            args += ["--tun-port", str(options.get("tunnel_port"))]
        checksum = options.get("tunnel_checksum")
        if checksum:
            args += ["--tun-" + checksum]
    return args


def timeout_message(args, timeout, writes=True):
    """What a killed ipvsadm run means: for a listing, nothing; for a write,
    that nobody knows whether the kernel applied it."""
    command = "ipvsadm %s" % " ".join(args)
    if not writes:
        return ("%s: no answer within timeout=%gs, killed; the director is overloaded or IPVS is stuck "
                "(see dmesg); rerun the task, or raise timeout" % (command, timeout))
    return ("%s: no answer within timeout=%gs, killed, so whether it took effect is unknown; check with "
            "ipvsadm -Ln, then rerun the task, or raise timeout" % (command, timeout))


def classify_failure(args, rc, stderr, service=None, dest=None):
    """Map ipvsadm's rc and stderr onto the core's errors (docs/ipvs.md)."""
    words = stderr_message(stderr)
    command = "ipvsadm %s" % " ".join(args)
    if "Permission denied" in stderr or "Operation not permitted" in stderr or "must be root" in stderr:
        return PermissionDeniedError("ipvsadm: not allowed to use IPVS (%s); run the task as root "
                                     "(become: true) on the director" % words)
    if "Protocol not available" in stderr or "built in the kernel" in stderr:
        return UnreachableError("ipvsadm: this kernel has no IP Virtual Server (ip_vs module missing: "
                                "%s); load it with modprobe ip_vs, or run the task on the director"
                                % words)
    if "Service not defined" in stderr or "No such service" in stderr:
        return NotFoundError("virtual service %s: not defined on this director (%s); check protocol, "
                             "address and port with ipvsadm -Ln, or create the service first"
                             % (service or "?", words))
    if "No such destination" in stderr:
        return NotFoundError("real server %s: not in virtual service %s any more (%s); it was changed "
                             "by someone else meanwhile, rerun the task" % (dest or "?", service or "?", words))
    if "Destination already exists" in stderr:
        return CommandError("real server %s: already in virtual service %s (%s); it was added by "
                            "someone else meanwhile, rerun the task" % (dest or "?", service or "?", words))
    if "illegal" in stderr or "invalid" in stderr or "out of range" in stderr or rc == 2:
        return InvalidInputError("%s: refused (%s); check the address, port, weight and thresholds"
                                 % (command, words))
    return CommandError("%s: failed with exit status %d (%s); check the virtual service with "
                        "ipvsadm -Ln and the kernel log (dmesg)" % (command, rc, words))


# --------------------------------------------------------------------------
# The pre-drain weight memory
# --------------------------------------------------------------------------

class WeightMemory(object):
    """The weights real servers had before they were drained, in a small JSON
    file on the director::

        {"version": 1,
         "weights": {"tcp:10.0.0.100:80 10.0.0.1:80": {"weight": 5, "drained_at": 1700000000}}}

    Written atomically (temporary file in the same directory, fsync, rename)
    under an exclusive lock on ``<file>.lock``, so two tasks draining on the
    same director at once do not lose each other's entries.  A corrupt file is
    reported (``warnings``), treated as empty, and kept as ``<file>.corrupt``
    on the next write."""

    def __init__(self, path=DEFAULT_STATE_FILE, clock=time.time):
        self.path = path
        self.clock = clock
        self.warnings = []
        self._data = None
        self._corrupt = False

    def _load(self):
        if self._data is not None:
            return self._data
        self._data = self._read_file()
        return self._data

    def _read_file(self):
        try:
            with open(self.path, "r") as handle:
                text = handle.read()
        except (IOError, OSError) as error:
            if error.errno == errno.ENOENT:
                return {}
            raise self._error("cannot be read", error)
        try:
            data = json.loads(text) if text.strip() else {"weights": {}}
            weights = data["weights"]
            if not isinstance(weights, dict):
                raise ValueError("weights is not an object")
            clean = {}
            for key, entry in weights.items():
                weight = entry.get("weight") if isinstance(entry, dict) else entry
                if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
                    raise ValueError("bad weight for %s" % key)
                clean[key] = dict(entry) if isinstance(entry, dict) else {"weight": weight}
            return clean
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            self._corrupt = True
            self.warnings.append(
                "state_file %s: not a gentle.lb weight memory (%s); the weights remembered there are "
                "lost, restores without weight use 1; the file is kept as %s.corrupt on the next write"
                % (self.path, error, self.path))
            return {}

    def _error(self, what, error):
        reason = getattr(error, "strerror", None) or str(error)
        if getattr(error, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
            return PermissionDeniedError("state_file %s: %s (%s); run the task as root or set "
                                         "state_file to a writable path" % (self.path, what, reason))
        return CommandError("state_file %s: %s (%s); fix the path or set state_file" % (self.path, what, reason))

    def get(self, key):
        entry = self._load().get(key)
        return entry["weight"] if entry else None

    def weights(self):
        """{key: weight} as the file says now (read again on every call:
        another task on this director may have written it meanwhile)."""
        self._data = self._read_file()
        return dict((key, entry["weight"]) for key, entry in self._data.items())

    def remember(self, key, weight):
        self.remember_many({key: weight})

    def remember_many(self, weights):
        """One locked, atomic write for every {key: weight}."""
        if not weights:
            return
        now = int(self.clock())

        def change(data):
            for key, weight in weights.items():
                data[key] = {"weight": int(weight), "drained_at": now}
        self._update(change)

    def forget(self, key):
        if self.get(key) is None:
            return
        self._update(lambda data: data.pop(key, None))

    def _update(self, change):
        """Read-modify-write under the lock: another task may have written."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            lock = open(self.path + ".lock", "a")
        except (IOError, OSError) as error:
            raise self._error("cannot be written", error)
        try:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            self._corrupt = False
            data = self._read_file()
            if self._corrupt:
                self._keep_corrupt()
            change(data)
            self._write(directory, data)
            self._data = data
        finally:
            lock.close()

    def _keep_corrupt(self):
        try:
            os.replace(self.path, self.path + ".corrupt")
        except OSError as error:
            raise self._error("is corrupt and cannot be moved aside", error)

    def _write(self, directory, data):
        text = json.dumps({"version": 1, "weights": data}, indent=1, sort_keys=True) + "\n"
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(self.path) + ".", dir=directory)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
            tmp = None
            _fsync_dir(directory)
        except (IOError, OSError) as error:
            raise self._error("cannot be written", error)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# keepalived / ldirectord
# --------------------------------------------------------------------------

def running_managers(proc_root="/proc"):
    """{name: pid} of keepalived / ldirectord processes.  ldirectord is a perl
    script: started through its #! line its name is its own, started as
    ``perl ldirectord`` it is found in the command line, which is read only
    for perl processes (one small read per process, however many there are)."""
    found = {}
    try:
        pids = sorted((int(p) for p in os.listdir(proc_root) if p.isdigit()))
    except OSError:
        return found
    for pid in pids:
        try:
            with open(os.path.join(proc_root, str(pid), "comm")) as handle:
                comm = handle.read().strip()
            names = [comm]
            if comm.startswith("perl"):
                with open(os.path.join(proc_root, str(pid), "cmdline"), "rb") as handle:
                    argv = handle.read().split(b"\0")[:2]
                names += [os.path.basename(a.decode("utf-8", "replace")) for a in argv if a]
        except (IOError, OSError):
            continue
        for name in MANAGER_PROCESSES:
            if name in names and name not in found:
                found[name] = pid
    return found


def manager_configs(configs=MANAGER_CONFIGS):
    """[(name, path)] of keepalived/ldirectord configurations that define virtual services."""
    found = []
    for name, path, keyword in configs:
        try:
            with open(path) as handle:
                text = handle.read()
        except (IOError, OSError, UnicodeDecodeError):
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith(keyword):
                found.append((name, path))
                break
    return found


def manager_warnings(proc_root="/proc", configs=MANAGER_CONFIGS):
    warnings = []
    running = running_managers(proc_root)
    for name, pid in sorted(running.items()):
        warnings.append(
            "%s is running (pid %d) on this director: it owns the virtual services of its "
            "configuration and may overwrite runtime changes made by gentle.lb.ipvs_member (on a "
            "health check or a reload); drain those services through %s instead (docs/ipvs.md)"
            % (name, pid, name))
    for name, path in manager_configs(configs):
        if name in running:
            continue
        warnings.append(
            "%s defines %s virtual services: if %s starts or reloads it rebuilds them and "
            "overwrites runtime changes made by gentle.lb.ipvs_member (docs/ipvs.md)" % (path, name, name))
    return warnings


EXPIRE_QUIESCENT = "net.ipv4.vs.expire_quiescent_template"
EXPIRE_NODEST = "net.ipv4.vs.expire_nodest_conn"


def read_sysctl(name, proc_root="/proc"):
    try:
        with open(sysctl_path(name, proc_root)) as handle:
            return int(handle.read().strip())
    except (IOError, OSError, ValueError):
        return None


def sysctl_path(name, proc_root="/proc"):
    return os.path.join(proc_root, "sys", *name.split("."))


def write_sysctl(name, value, proc_root="/proc", dry_run=False):
    """Set an IPVS sysctl of this network namespace (``/proc/sys/net/ipv4/vs/...``);
    with ``dry_run`` only check that it could be set."""
    path = sysctl_path(name, proc_root)
    try:
        if dry_run:
            if not os.access(path, os.W_OK):
                raise OSError(errno.EACCES if os.path.exists(path) else errno.ENOENT,
                              os.strerror(errno.EACCES if os.path.exists(path) else errno.ENOENT))
            return
        with open(path, "w") as handle:
            handle.write("%d\n" % value)
    except (IOError, OSError) as error:
        reason = error.strerror or str(error)
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise PermissionDeniedError("sysctl %s: cannot be set to %d (%s); nothing was changed; run the task as "
                                        "root on the director, or set it in /etc/sysctl.d and leave "
                                        "expire_quiescent_template off" % (name, value, reason))
        raise CommandError("sysctl %s: cannot be set to %d (%s); nothing was changed; is ip_vs loaded?"
                           % (name, value, reason))


# --------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------

DEST_OPTION_KEYS = ("forwarding", "upper_threshold", "lower_threshold", "tunnel_type",
                    "tunnel_port", "tunnel_checksum")


class IPVSBackend(Backend):
    """The core's view of an LVS director, through ipvsadm.

    present = weight > 0, drained = weight 0, absent = no destination.
    Sessions = ActiveConn (+ InActConn with count_inactive, + PersistConn, the
    persistence templates, with count_persistent).  IPVS has no health view:
    every destination reports health "unknown" (usable)."""

    kind = "IPVS"
    container_label = "virtual service"
    member_label = "real server"
    removes_member = True
    drained_weight = 0
    # force deletes the destination (absent only; validate refuses it for drained)
    can_force = True
    # A poll is one or two ipvsadm runs: a few milliseconds on a director.
    default_poll_interval = 0.2

    def __init__(self, ipvsadm, memory=None, count_inactive=False, count_persistent=False,
                 stats=False, rates=False, read_persistent=None, proc_root="/proc", configs=MANAGER_CONFIGS,
                 check_managers=True, expire_quiescent_template=False):
        super(IPVSBackend, self).__init__()
        self.ipvsadm = ipvsadm
        self.memory = memory or WeightMemory()
        self.count_inactive = count_inactive
        self.count_persistent = count_persistent
        # PersistConn costs one more listing of the table (in the same
        # ipvsadm run): read it when it is counted, or asked for (the info module).
        self.read_persistent = count_persistent if read_persistent is None else read_persistent
        # Set net.ipv4.vs.expire_quiescent_template=1 before draining in a
        # persistent service, so that returning clients move (prepare()).
        self.expire_quiescent_template = expire_quiescent_template
        self.stats = stats
        self.rates = rates
        self.proc_root = proc_root
        self.configs = configs
        self.check_managers = check_managers
        self.services = {}
        self.remembered = {}
        self.forced = []

    # ---- reading

    def _table(self, formats, containers=None):
        """The table in ``formats``, merged; only ``containers`` when named
        (a missing one is simply not in the result)."""
        keys = None
        if containers:
            keys = [parse_service_spec(name) for name in containers]
        listed = self.ipvsadm.listings(formats, keys)
        return merge_listings([listed[fmt] for fmt in formats])

    def _formats(self, full):
        formats = ["tun_info"]
        if full:
            formats.append("thresholds")
        if (full and self.read_persistent) or self.count_persistent:
            formats.append("persistent_conn")
        if full and self.stats:
            formats.append("stats")
        if full and self.rates:
            formats.append("rate")
        return formats

    def read(self, containers):
        """The members in ``containers``, and what planning needs beside them:
        the services' own flags and the weights remembered before drains (so
        that planning does no I/O)."""
        table = self._table(self._formats(full=True), containers)
        self.services = table
        self.remembered = self.memory.weights()
        return self._members(table, containers)

    def poll(self, containers):
        """While waiting only the counters move: one or two listings, and the
        thresholds carried over from the last full read."""
        table = self._table(self._formats(full=False), containers)
        for name, service in table.items():
            known = self.services.get(name)
            if known is None:
                continue
            for dest_name, dest in service.dests.items():
                old = known.dests.get(dest_name)
                if old is not None:
                    for field in ("upper", "lower", "stats", "rates"):
                        if getattr(dest, field) is None:
                            setattr(dest, field, getattr(old, field))
                    if dest.persistent is None:
                        dest.persistent = old.persistent
        return self._members(table, containers)

    def _members(self, table, containers):
        if containers:
            for container in containers:
                if container not in table:
                    raise NotFoundError(
                        "virtual service %s: not defined on this director (ipvsadm -Ln does not list "
                        "it); check protocol, address and port, or create the service first" % container)
        members = []
        for name, service in table.items():
            if containers and name not in containers:
                continue
            for dest in service.dests.values():
                members.append(self._member(service, dest))
        return members

    def _member(self, service, dest):
        sessions = dest.active or 0
        if self.count_inactive:
            sessions += dest.inactive or 0
        if self.count_persistent:
            sessions += dest.persistent or 0
        weight = dest.weight
        details = dict(
            forwarding=dest.forwarding,
            upper_threshold=dest.upper,
            lower_threshold=dest.lower,
            tunnel_type=dest.tunnel_type if dest.forwarding == "tunnel" else None,
            tunnel_port=dest.tunnel_port,
            tunnel_checksum=dest.tunnel_checksum,
            active_connections=dest.active,
            inactive_connections=dest.inactive,
            persistent_connections=dest.persistent,
            scheduler=service.scheduler,
        )
        if self.stats:
            details["stats"] = dest.stats
        if self.rates:
            details["rates"] = dest.rates
        return Member(service.name, dest.name, dest.address, dest.port,
                      state="present" if (weight or 0) > 0 else "drained",
                      weight=weight, sessions=sessions, health="unknown", details=details)

    # ---- planning

    def validate(self, request):
        weight = request.weight
        if weight is not None:
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
                raise InvalidInputError("weight %s: out of range; IPVS weights are 0-%d"
                                        % (weight, MAX_WEIGHT))
            if weight == 0 and request.state == "present":
                raise InvalidInputError("weight 0: weight 0 is the drained state; use state=drained, "
                                        "or a weight of 1-%d for state=present" % MAX_WEIGHT)
        if request.on_timeout == "force" and request.state == "drained":
            raise InvalidInputError(
                "on_timeout force: IPVS cannot end the connections of a real server it keeps (weight 0); "
                "use state=absent with on_timeout=force (deletes the destination), or on_timeout=continue")
        validate_dest_options(request.options)

    def target_weight(self, member, requested):
        if requested is not None:
            return requested
        if member.state == "present":
            return None
        remembered = self.remembered.get(member_key(member.container, member.name))
        for warning in self.memory.warnings:
            self.warn(warning)
        if remembered is not None:
            return remembered
        if member.state == "drained":
            self.warn("real server %s in virtual service %s: no weight remembered from before the "
                      "drain (state_file %s); restored with weight 1, set weight to choose"
                      % (member.name, member.container, self.memory.path))
        return 1

    def new_member(self, container, selector, request):
        service = self.services.get(container)
        if service is None or selector.address is None:
            return None
        key = service.key
        options = dict((k, request.options.get(k)) for k in DEST_OPTION_KEYS)
        forwarding = options["forwarding"] or "route"
        options["forwarding"] = forwarding
        family = 6 if ":" in selector.address else 4
        if key.family != family and forwarding != "tunnel":
            raise InvalidInputError(
                "real server %s: an IPv%d real server in the IPv%d virtual service %s needs "
                "forwarding: tunnel (IPVS allows mixed address families only for tunnels)"
                % (selector.address, family, key.family, container))
        if key.protocol == "fwmark":
            port = selector.port if selector.port is not None else 0
        else:
            port = selector.port if selector.port is not None else key.port
            if forwarding in ("route", "tunnel") and port != key.port:
                raise InvalidInputError(
                    "port %d: with forwarding %s a real server receives the virtual service's own "
                    "port (%d); use forwarding: masq to map to another port, or omit port"
                    % (port, forwarding, key.port))
        if forwarding == "tunnel" and not options["tunnel_type"]:
            options["tunnel_type"] = "ipip"
        details = dict(forwarding=forwarding,
                       upper_threshold=options["upper_threshold"] or 0,
                       lower_threshold=options["lower_threshold"] or 0,
                       tunnel_type=options["tunnel_type"] if forwarding == "tunnel" else None,
                       tunnel_port=options["tunnel_port"],
                       tunnel_checksum=options["tunnel_checksum"],
                       active_connections=0, inactive_connections=0, persistent_connections=0,
                       scheduler=service.scheduler)
        return Member(container, endpoint(selector.address, port), selector.address, port,
                      state="absent", weight=None, sessions=0, health="unknown", details=details)

    def lock_key(self):
        """One IPVS table per network namespace."""
        try:
            namespace = os.stat("/proc/self/ns/net").st_ino
        except OSError:
            namespace = "?"
        return "ipvs netns:%s" % namespace

    def check_plan(self, plan, members, request):
        """Refuse what could not be restated faithfully (``ipvsadm -e`` resets
        every option it is not given), before anything is written."""
        for change in plan.changes:
            member = change.member
            if change.add or change.state == "absent" and member.state != "present":
                continue
            self._current_options(member)

    def prepare(self, changes, request):
        """Before the first write: remember, in one write of the state file,
        the weights the drains are about to set to 0, and with
        expire_quiescent_template set that sysctl to 1 if a drain is in a
        persistent service.  If either fails, nothing is changed."""
        weights = {}
        for change in changes:
            if change.state in ("drained", "absent") and change.member.weight:
                weights[member_key(change.member.container, change.member.name)] = change.member.weight
        persistent = self._persistent_services(c.member.container for c in changes
                                               if c.state in ("drained", "absent"))
        before = None
        if self.expire_quiescent_template and persistent:
            before = read_sysctl(EXPIRE_QUIESCENT, self.proc_root)
            if before != 1:
                write_sysctl(EXPIRE_QUIESCENT, 1, self.proc_root, dry_run=True)     # fail before any write
        if weights:
            self.memory.remember_many(weights)
        if before != 1 and self.expire_quiescent_template and persistent:
            write_sysctl(EXPIRE_QUIESCENT, 1, self.proc_root)
            self.warn("%s: set to 1 (was %s) before draining in the persistent virtual service%s %s, so clients "
                      "with a persistence template go to other real servers; it applies to the whole director "
                      "and stays 1" % (EXPIRE_QUIESCENT, before, "s" if len(persistent) > 1 else "",
                                       ", ".join(persistent)))

    def _persistent_services(self, names):
        return sorted(set(name for name in names
                          if name in self.services and self.services[name].persistent is not None))

    # ---- writing

    def apply(self, change, request):
        member = change.member
        service = self.services[member.container]
        key = member_key(member.container, member.name)
        if change.add:
            self.ipvsadm.add(service.key, member.name, member.details, change.weight)
            self.memory.forget(key)
            return
        if change.state == "absent":
            self.ipvsadm.delete(service.key, member.name)
            return
        options = self._current_options(member)
        if change.state == "drained":
            self.ipvsadm.edit(service.key, member.name, options, 0)   # weight remembered by prepare()
            return
        self.ipvsadm.edit(service.key, member.name, options, change.weight)
        self.memory.forget(key)

    def _current_options(self, member):
        details = member.details
        if details.get("forwarding") is None or details.get("upper_threshold") is None \
                or details.get("lower_threshold") is None:
            raise CommandError("real server %s in virtual service %s: its forwarding method or "
                               "thresholds could not be read; nothing was changed, rerun the task"
                               % (member.name, member.container))
        if details["forwarding"] == "tunnel" and details.get("tunnel_type") == "gue" \
                and details.get("tunnel_port") is None:
            raise CommandError("real server %s in virtual service %s: its GUE tunnel port could not be "
                               "read; nothing was changed" % (member.name, member.container))
        return details

    def force(self, members):
        """``on_timeout: force`` (state absent only, see validate): the core
        deletes the destinations anyway; what happens to their connections is
        the kernel's expire_nodest_conn choice, returned as the core's note."""
        self.forced.extend(members)
        expire = read_sysctl(EXPIRE_NODEST, self.proc_root)
        if expire == 1:
            fate = "net.ipv4.vs.expire_nodest_conn=1, so they are reset on their next packet"
        else:
            fate = ("net.ipv4.vs.expire_nodest_conn=%s, so their packets are dropped until the clients "
                    "give up (set it to 1 to have them reset instead)" % ("0" if expire is None else expire))
        return ("deleted with %d connection(s) still open; %s"
                % (sum(m.sessions for m in members), fate))

    # ---- warnings

    def result_warnings(self, result, request):
        """Warnings about the table as it is: managers, sh/mh without
        fallback, persistence that keeps clients on a drained server, and
        options of existing destinations that are kept."""
        if self.check_managers:
            for warning in manager_warnings(self.proc_root, self.configs):
                self.warn(warning)
        draining = request is not None and request.state in ("drained", "absent")
        pinned = []         # (service, real server) kept reachable by persistence templates
        for entry in result.get("members", []):
            service = self.services.get(entry.get("container"))
            if service is None:
                continue
            leaving = entry.get("state_before") == "present" and entry.get("state") in ("drained", "absent")
            if leaving:
                self._scheduler_warning(service, entry)
            if draining and entry.get("state_before") != "absent" and service.persistent is not None:
                pinned.append((service.name, entry.get("name")))
            if request is not None and request.state == "present" and entry.get("state_before") != "absent":
                self._kept_option_warning(entry, request.options)
        if pinned and not self.expire_quiescent_template \
                and read_sysctl(EXPIRE_QUIESCENT, self.proc_root) == 0:
            services = sorted(set(name for name, _dest in pinned))
            servers = sorted(set(dest for _name, dest in pinned))
            self.warn("virtual service%s %s %s persistent and %s=0: clients with a persistence template keep "
                      "reaching %s while %s weight is 0; set expire_quiescent_template: true (or the sysctl to 1) "
                      "to move them, or count_persistent: true to wait until their templates expire"
                      % ("s" if len(services) > 1 else "", ", ".join(services), "are" if len(services) > 1 else "is",
                         EXPIRE_QUIESCENT, ", ".join(servers), "their" if len(servers) > 1 else "its"))
        return []     # all of them went through warn()

    def _scheduler_warning(self, service, entry):
        if service.scheduler not in ("sh", "mh"):
            return
        fallback = "%s-fallback" % service.scheduler
        if fallback in service.sched_flags:
            return
        self.warn("virtual service %s uses the %s scheduler without %s: clients that hash to %s get "
                  "no answer while its weight is 0; add the flag to the service (ipvsadm -E ... -b "
                  "%s, restating all its other options)" % (service.name, service.scheduler, fallback,
                                                            entry.get("name"), fallback))

    def _kept_option_warning(self, entry, options):
        differ = []
        for option in DEST_OPTION_KEYS:
            wanted = options.get(option)
            if wanted is None:
                continue
            if option == "forwarding":
                have = entry.get("forwarding")
                have = "route" if have == "local" else have
            else:
                have = entry.get(option)
            if wanted != have:
                differ.append("%s=%s (is %s)" % (option, wanted, have))
        if differ:
            self.warn("real server %s in virtual service %s: %s ignored; options of an existing "
                      "destination are kept as they are (remove it with state=absent and add it "
                      "again to change them)" % (entry.get("name"), entry.get("container"),
                                                 ", ".join(differ)))

    def describe_extra(self, containers):
        """The virtual services themselves, for ipvs_member_info."""
        return dict(services=[s.as_dict() for name, s in self.services.items()
                              if not containers or name in containers])


def validate_dest_options(options):
    """The options used when a destination is added: checked before any I/O."""
    forwarding = options.get("forwarding")
    if forwarding is not None and forwarding not in ("route", "masq", "tunnel"):
        raise InvalidInputError("forwarding %s: not one of route, masq, tunnel" % forwarding)
    upper = options.get("upper_threshold")
    lower = options.get("lower_threshold")
    for name, value in (("upper_threshold", upper), ("lower_threshold", lower)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0
                                  or value > 2147483647):
            raise InvalidInputError("%s %s: out of range; give 0 (no limit) to 2147483647" % (name, value))
    if lower and (upper or 0) < lower:
        raise InvalidInputError("lower_threshold %d: above upper_threshold %d; IPVS needs "
                                "lower_threshold <= upper_threshold" % (lower, upper or 0))
    tunnel_type = options.get("tunnel_type")
    tunnel_port = options.get("tunnel_port")
    checksum = options.get("tunnel_checksum")
    if tunnel_type is not None and tunnel_type not in TUNNEL_TYPES:
        raise InvalidInputError("tunnel_type %s: not one of %s" % (tunnel_type, ", ".join(TUNNEL_TYPES)))
    if checksum is not None and checksum not in TUNNEL_CHECKSUMS:
        raise InvalidInputError("tunnel_checksum %s: not one of %s"
                                % (checksum, ", ".join(TUNNEL_CHECKSUMS)))
    if (tunnel_type or tunnel_port is not None or checksum) and forwarding not in (None, "tunnel"):
        raise InvalidInputError("tunnel options: only used with forwarding: tunnel (forwarding is %s)"
                                % forwarding)
    if tunnel_type == "gue" and tunnel_port is None:
        raise InvalidInputError("tunnel_type gue: needs tunnel_port (the GUE UDP port on the real server)")
    if tunnel_port is not None:
        if tunnel_type != "gue":
            raise InvalidInputError("tunnel_port %s: only used with tunnel_type: gue" % tunnel_port)
        check_port(tunnel_port, "tunnel_port", allow_zero=False)
    if checksum and tunnel_type not in ("gue", "gre"):
        raise InvalidInputError("tunnel_checksum %s: only used with tunnel_type gue or gre" % checksum)
    if checksum == "remcsum" and tunnel_type != "gue":
        raise InvalidInputError("tunnel_checksum remcsum: only used with tunnel_type: gue")
