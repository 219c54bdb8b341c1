"""Users, login tokens, and the authentication of each REST request (reference §3).

A device hands out a token per login (default lifetime 1200 s, at most
36000 s), refuses logins past a per-user cap of active tokens, and answers
401 with restjavad's error shape for a missing, unknown or expired token.
Basic authentication works for local users, which all emulated users are.
"""
import base64
import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import F5Error, rest_error

MAX_TOKEN_TIMEOUT = 36000


def user_uuid(username):
    # The id in "user <uuid> has reached maximum active login tokens" is a
    # name-based (version 3) UUID of the user name, as Java's nameUUIDFromBytes
    # makes it: admin -> 21232f29-7a57-35a7-8389-4a0e4a801fc3.
    return str(uuid.UUID(bytes=hashlib.md5(username.encode()).digest(), version=3))


def new_token_value():
    return base64.b32encode(os.urandom(20)).decode()[:26]


@dataclass
class Token:
    value: str
    user: str
    timeout: int
    start: float
    address: str
    generation: int = 1

    @property
    def expires(self):
        return self.start + self.timeout

    def to_json(self):
        start = datetime.fromtimestamp(self.start, timezone.utc)
        return {
            "token": self.value, "name": self.value, "userName": self.user,
            "authProviderName": "tmos",
            "user": {"link": "https://localhost/mgmt/shared/authz/users/%s" % self.user},
            "groupReferences": [], "timeout": self.timeout,
            "startTime": start.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d+0000" % (start.microsecond // 1000),
            "address": self.address, "partition": "[All]", "generation": self.generation,
            "lastUpdateMicros": int(self.start * 1e6), "expirationMicros": int(self.expires * 1e6),
            "kind": "shared:authz:tokens:authtokenitemstate",
            "selfLink": "https://localhost/mgmt/shared/authz/tokens/%s" % self.value,
        }


class TokenStore:
    def __init__(self, clock):
        self.clock = clock
        self.tokens = {}
        self.default_timeout = 1200
        self.max_per_user = 100

    def _purge(self):
        # Devices forget expired tokens after a while; keep them for an hour so
        # a client using one still hears "has expired", not "does not exist".
        now = self.clock.time()
        for value in [v for v, t in self.tokens.items() if t.expires + 3600 < now]:
            del self.tokens[value]

    def active(self, user=None):
        now = self.clock.time()
        return [t for t in self.tokens.values()
                if t.expires > now and (user is None or t.user == user)]

    def issue(self, user, address):
        self._purge()
        if len(self.active(user)) >= self.max_per_user:
            raise F5Error(400, {"code": 400, "message": "user %s has reached maximum active login tokens"
                                % user_uuid(user), "errorStack": [], "apiError": 1})
        token = Token(new_token_value(), user, self.default_timeout, self.clock.time(), address)
        self.tokens[token.value] = token
        return token

    def lookup(self, value):
        token = self.tokens.get(value)
        if token is None:
            raise unauthorized("X-F5-Auth-Token does not exist.")
        if token.expires <= self.clock.time():
            raise unauthorized("X-F5-Auth-Token has expired.")
        return token

    def set_timeout(self, token, timeout):
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TOKEN_TIMEOUT:
            raise F5Error(400, {"code": 400, "message": "Invalid timeout value %r; it must be between 1 and %d."
                                % (timeout, MAX_TOKEN_TIMEOUT), "errorStack": [], "apiError": 1})
        # The lifetime counts from the token's start, as expirationMicros shows.
        token.timeout = timeout
        token.generation += 1

    def delete(self, value):
        return self.tokens.pop(value, None)

    def expire(self, value=None, user=None):
        """Make tokens expire now (all, one, or one user's). Returns how many."""
        now = self.clock.time()
        hit = 0
        for token in self.tokens.values():
            if (value is None or token.value == value) and (user is None or token.user == user):
                token.timeout = max(0, int(now - token.start) - 1)
                hit += 1
        return hit


def unauthorized(message):
    error = rest_error(401, message)
    error.headers["WWW-Authenticate"] = 'Basic realm="Enterprise Manager"'
    return error


def basic_credentials(header):
    """'Basic dXNlcjpwdw==' -> ('user', 'pw'), or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


HTML_401 = ("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n"
            "<title>401 Unauthorized</title>\n</head><body>\n<h1>Unauthorized</h1>\n"
            "<p>This server could not verify that you\nare authorized to access the document\n"
            "requested.</p>\n</body></html>\n")


def authenticate(users, tokens, headers, path, client):
    """Return the user a REST request acts as, or raise the device's 401."""
    value = headers.get("X-F5-Auth-Token")
    if value:
        return tokens.lookup(value).user
    creds = basic_credentials(headers.get("Authorization"))
    if creds:
        user, password = creds
        if users.get(user) == password:
            return user
        # Basic auth is checked by the web server in front of restjavad, which
        # answers with its own HTML page and a challenge.
        raise F5Error(401, HTML_401, {"WWW-Authenticate": 'Basic realm="Enterprise Manager"'})
    raise unauthorized("Authorization failed: no user authentication header or token detected. "
                       "Uri:http://localhost:8100%s Referrer:%s Sender:%s" % (path, client, client))
