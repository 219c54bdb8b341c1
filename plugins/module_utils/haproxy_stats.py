# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy's statistics page as a transport for gentle.lb (``stats_url``):
reads ``<uri>;csv``, changes servers through the page's admin form.

Kept apart from haproxy.py, which imports it only when ``stats_url`` is
used: a task on the runtime API then never loads an HTTP and TLS stack
(http.client, ssl and email.* cost a module run tens of milliseconds).

Never imports ansible.module_utils.basic; Python 3.9 compatible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re
import socket as socketlib
import ssl
import time

from http import client as httplib
from urllib.parse import unquote, urlencode, urlsplit

from ansible_collections.gentle.lb.plugins.module_utils.haproxy import (
    STATE_COMMANDS,
    _strerror,
    backends_in_csv,
    csv_server_rows,
    parse_show_stat,
)
from ansible_collections.gentle.lb.plugins.module_utils.member import (
    AuthRefusedError,
    CommandError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    UnreachableError,
)

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

    def set_agent(self, backend, server, enabled):
        self.post(backend, server, "eagent" if enabled else "dagent")


def redact_url(url):
    """The URL with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc="%s:***@%s" % (parts.username, netloc)).geturl()
