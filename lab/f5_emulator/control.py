"""The control channel: ``/_emulator/...``, which is no F5 path.

Tests, benchmarks and users drive the emulated world through it: seed
objects, set a member's load and health, watch connections drain, count
requests, expire tokens, change the drain rate, inject faults and move the
clock. It needs no authentication (the emulator listens on 127.0.0.1 only).
All bodies are JSON. See README.md for each endpoint.
"""
from . import ha
from .errors import F5Error
from .rest import Response

ENDPOINTS = {
    "GET /_emulator/state": "the whole emulated device, with live connection counts",
    "POST /_emulator/seed": "add objects from a seed document ({\"reset\": true} clears first)",
    "POST /_emulator/reset": "forget all objects, tokens, transactions, faults and the request log",
    "GET /_emulator/members": "members with live counts (?pool=&member=&address=&port=)",
    "POST /_emulator/members": "select {pool, member, address, port}; set {connections, sessions, health, "
                               "drain_rate, persistent}",
    "POST /_emulator/pools": "{pool, monitor}: set or clear (null) a pool's monitor",
    "POST /_emulator/traffic": "{pool, connections, requests_per_connection?: 1, request_bytes?: 0, "
                               "response_bytes?: 0}: send new client connections through the pool's load "
                               "balancing; the members' totals count them",
    "GET /_emulator/requests": "request counts per method and path, and the log (?entries=0 omits it)",
    "DELETE /_emulator/requests": "clear the request log",
    "GET /_emulator/tokens": "issued tokens",
    "POST /_emulator/tokens/expire": "{token?, user?}: expire one, a user's, or all tokens now",
    "GET /_emulator/config": "drain_rate, token_timeout, max_tokens, version, users, roles",
    "POST /_emulator/config": "change any of drain_rate (number or 'hold'), token_timeout, max_tokens, version, users, "
                             "roles (user -> admin|operator|guest)",
    "GET /_emulator/faults": "pending injected faults",
    "POST /_emulator/faults": "{path, method?, count?, kind: mcpd|reset|restarting|status|delay|trickle, status?, "
                              "body?, seconds?}",
    "DELETE /_emulator/faults": "clear injected faults",
    "GET /_emulator/ha": "this device, its device group, failover states and sync status",
    "POST /_emulator/failover": "{active: device name, move_connections?: true, at_next_stats?: false}: fail the "
                                "group over (now, or right before the next pool member stats request is answered)",
    "POST /_emulator/sync": "run config-sync to-group from this device",
    "GET /_emulator/clock": "the emulator's clock",
    "POST /_emulator/clock": "{advance: seconds}: move the clock forward (drains, token expiry)",
}


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def handle(state, method, path, query, body):
    route = "%s %s" % (method, path.rstrip("/"))
    body = body if isinstance(body, dict) else {}
    try:
        return Response(200, _handle(state, route, query, body))
    except ControlError as exc:
        return Response(exc.status, {"error": str(exc)})
    except F5Error as exc:
        return Response(exc.status if exc.status >= 400 else 400,
                        {"error": exc.message})
    except (ValueError, KeyError, TypeError) as exc:
        return Response(400, {"error": "%s: %s" % (type(exc).__name__, exc)})


def _one(query, name):
    return (query.get(name) or [None])[0]


def _selected(state, spec):
    found = state.find_members(spec.get("pool"), spec.get("member"), spec.get("address"), spec.get("port"))
    if not found:
        wanted = dict((k, spec.get(k)) for k in ("pool", "member", "address", "port") if spec.get(k))
        raise ControlError(404, "no pool member matches %s" % wanted)
    return found


def _pool(state, body):
    pool = state.pools.get(body.get("pool", "")) or state.pools.get("/Common/%s" % body.get("pool", ""))
    if pool is None:
        raise ControlError(404, "no pool %r" % body.get("pool"))
    return pool


def _handle(state, route, query, body):
    if route == "GET /_emulator":
        return {"endpoints": ENDPOINTS}
    if route == "GET /_emulator/state":
        return state.dump()
    if route == "POST /_emulator/seed":
        if body.pop("reset", False):
            state.reset()
        state.seed(body)
        return state.dump()
    if route == "POST /_emulator/reset":
        state.reset()
        state.tokens.tokens.clear()
        state.faults.clear()
        state.requests.clear()
        return state.dump()
    if route == "GET /_emulator/members":
        spec = {k: _one(query, k) for k in ("pool", "member", "address", "port")}
        return {"members": [state.describe_member(p, m) for p, m in state.find_members(**spec)]}
    if route == "POST /_emulator/members":
        runtime = {k: body[k] for k in ("connections", "sessions", "health", "drain_rate", "persistent")
                   if k in body}
        found = _selected(state, body)
        for _, member in found:
            state.set_runtime(member, **runtime)
        return {"members": [state.describe_member(p, m) for p, m in found]}
    if route == "POST /_emulator/traffic":
        counts = dict((k, int(body.get(k, default))) for k, default in (
            ("connections", 0), ("requests_per_connection", 1), ("request_bytes", 0), ("response_bytes", 0)))
        if min(counts.values()) < 0:
            raise ControlError(400, "connections, requests_per_connection and the byte counts must be >= 0")
        return state.send_traffic(_pool(state, body), **counts)
    if route == "POST /_emulator/pools":
        pool = _pool(state, body)
        if "monitor" in body:
            state.update_pool(pool, {"monitor": body["monitor"] or ""})
        return {"fullPath": pool.fullpath, "monitor": pool.monitor}
    if route == "GET /_emulator/requests":
        snap = state.requests.snapshot()
        if _one(query, "entries") == "0":
            snap.pop("entries")
        return snap
    if route == "DELETE /_emulator/requests":
        state.requests.clear()
        return {"total": 0}
    if route == "GET /_emulator/tokens":
        return {"active": len(state.tokens.active()),
                "tokens": [t.to_json() for t in state.tokens.tokens.values()]}
    if route == "POST /_emulator/tokens/expire":
        return {"expired": state.tokens.expire(body.get("token"), body.get("user"))}
    if route == "GET /_emulator/config":
        return _config(state)
    if route == "POST /_emulator/config":
        if "drain_rate" in body:
            state.set_drain_rate(body["drain_rate"])
        if "token_timeout" in body:
            state.tokens.default_timeout = int(body["token_timeout"])
        if "max_tokens" in body:
            state.tokens.max_per_user = int(body["max_tokens"])
        if "version" in body:
            state.version = str(body["version"])
        if "users" in body:
            state.users.update(body["users"])
        if "roles" in body:
            state.set_roles(body["roles"])
        return _config(state)
    if route == "GET /_emulator/ha":
        return _ha(state)
    if route == "POST /_emulator/failover":
        if not body.get("active"):
            raise ControlError(400, "name the device to make active: {\"active\": \"bigip2.example.com\"}")
        if body.get("at_next_stats"):
            if state.group is None or body["active"] not in [s.device.name for s in state.group.members]:
                raise ControlError(400, "no device %r in this device's group" % body["active"])
            state.failover_at_next_stats = (body["active"], body.get("move_connections", True))
            return _ha(state)
        try:
            ha.failover(state, body["active"], body.get("move_connections", True))
        except ValueError as exc:
            raise ControlError(400, str(exc))
        return _ha(state)
    if route == "POST /_emulator/sync":
        if state.group is None:
            raise ControlError(400, "this device is standalone: there is no group to sync")
        ha.config_sync(state)
        return _ha(state)
    if route == "GET /_emulator/faults":
        return {"faults": state.faults.list()}
    if route == "POST /_emulator/faults":
        if not body.get("path"):
            raise ControlError(400, "a fault needs a path pattern")
        state.faults.add(body["path"], body.get("method"), body.get("count", 1), body.get("kind", "mcpd"),
                         body.get("status", 500), body.get("body"), body.get("seconds", 0))
        return {"faults": state.faults.list()}
    if route == "DELETE /_emulator/faults":
        state.faults.clear()
        return {"faults": []}
    if route == "GET /_emulator/clock":
        return {"time": state.now()}
    if route == "POST /_emulator/clock":
        if not hasattr(state.clock, "advance"):
            raise ControlError(400, "this emulator's clock cannot be moved")
        state.clock.advance(float(body.get("advance", 0)))
        return {"time": state.now()}
    raise ControlError(404, "unknown control endpoint %s; GET /_emulator lists them" % route)


def _config(state):
    return {"drain_rate": state.drain_rate, "token_timeout": state.tokens.default_timeout,
            "max_tokens": state.tokens.max_per_user, "version": state.version,
            "users": sorted(state.users), "roles": dict((u, state.role_of(u)) for u in sorted(state.users))}


def _ha(state):
    group = state.group
    status, details = ha.sync_status(state)
    devices = [state] + ha.peers(state)
    return {"device": state.device.name, "group": group.fullpath if group else None,
            "auto_sync": group.auto_sync if group else None, "sync_status": status, "details": details,
            "devices": [{"name": s.device.name, "management_ip": s.device.management_ip,
                         "failover_state": s.device.failover_state} for s in devices]}
