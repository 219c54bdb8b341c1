"""iControl REST: routing and handlers (reference §1-§7).

``handle(state, request)`` answers one request under the state lock and
returns a ``Response``; errors travel as ``F5Error`` and are rendered by the
caller. Writes sent with ``X-F5-REST-Coordination-Id`` are queued in their
transaction instead of applied, and a commit replays them all-or-nothing.
"""
import json
import re
from dataclasses import dataclass, field

from . import errors, ha, views
from .auth import authenticate
from .errors import F5Error, rest_error
from .names import DEFAULT_PARTITION, join_fullpath, split_member_name, url_segment_to_fullpath


@dataclass
class Request:
    method: str
    path: str                 # raw path, no query string
    query: dict = field(default_factory=dict)   # parse_qs() result
    headers: dict = field(default_factory=dict)
    body: object = None       # parsed JSON, or None
    client: str = "127.0.0.1"


@dataclass
class Response:
    status: int
    body: object = None       # dict/list -> JSON; str -> HTML/text; None -> empty
    headers: dict = field(default_factory=dict)


class Context:
    def __init__(self, state, request, user):
        self.state = state
        self.req = request
        self.user = user
        self.links = views.Links(state.version)


WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
LOGIN = "/mgmt/shared/authn/login"
SEG = r"(?P<%s>[^/]+)"
ROUTES = []


def route(pattern):
    regex = re.compile(pattern.replace("{pool}", SEG % "pool").replace("{member}", SEG % "member")
                       .replace("{node}", SEG % "node").replace("{token}", SEG % "token")
                       .replace("{tid}", r"(?P<tid>\d+)"))

    def register(func):
        ROUTES.append((regex, func))
        return func
    return register


def handle(state, req):
    """Answer one REST request (the caller holds ``state.lock``)."""
    path = req.path.rstrip("/") or "/"
    if path == LOGIN:
        if req.method != "POST":
            raise errors.method_not_allowed(req.method, path)
        return login(state, req)
    user = authenticate(state.users, state.tokens, req.headers, path, req.client)
    ctx = Context(state, req, user)
    authorize(ctx, path)
    tid = req.headers.get("X-F5-REST-Coordination-Id")
    if tid and req.method in WRITE_METHODS and path.startswith("/mgmt/tm/") \
            and not path.startswith("/mgmt/tm/transaction"):
        return queue_in_transaction(ctx, tid, path)
    response = dispatch(ctx, path)
    if req.method in WRITE_METHODS and path.startswith("/mgmt/tm/") and path != "/mgmt/tm/cm":
        ha.after_change(state)
    return response


# --- roles ---------------------------------------------------------------------
#
# F5 documents the Operator role as "enable or disable nodes and pool members"
# and nothing else, and devices refuse the rest with mcpd's
# "01070822:3: Access Denied: user (X) does not have create access to object
# (pool_member)" (seen in f5-ansible #2133 and #313). The emulator lets an
# operator change only ``session``/``state`` of a member or node; a guest may
# only read.

OPERATOR_FIELDS = {"session", "state"}
OBJECT_TYPES = (("/members", "pool_member"), ("/mgmt/tm/ltm/pool", "pool"), ("/mgmt/tm/ltm/node", "node"),
                ("/mgmt/tm/cm", "device_group"), ("/mgmt/tm/transaction", "transaction"))
VERBS = {"POST": "create", "DELETE": "delete", "PATCH": "modify", "PUT": "modify"}


def authorize(ctx, path):
    role = ctx.state.role_of(ctx.user)
    method = ctx.req.method
    if role == "admin" or method not in WRITE_METHODS or not path.startswith("/mgmt/tm/"):
        return
    if role == "operator" and method in ("PATCH", "PUT") and _toggles_only(path, ctx.req.body):
        return
    kind = next(name for marker, name in OBJECT_TYPES + (("", "object"),) if marker in path)
    raise errors.access_denied(ctx.user, VERBS[method], kind)


def _toggles_only(path, body):
    item = re.fullmatch(r"/mgmt/tm/ltm/(pool/[^/]+/members|node)/[^/]+", path)
    if not item or not isinstance(body, dict):
        return False
    return set(k for k in body if k not in IGNORED_ECHO) <= OPERATOR_FIELDS


IGNORED_ECHO = {"kind", "name", "partition", "fullPath", "generation", "selfLink", "address"}


def dispatch(ctx, path):
    for regex, func in ROUTES:
        match = regex.fullmatch(path)
        if match:
            return func(ctx, **match.groupdict())
    raise errors.uri_not_registered(path)


def ok(body):
    return Response(200, body)


def not_allowed(ctx):
    return errors.method_not_allowed(ctx.req.method, ctx.req.path)


def body_dict(ctx):
    body = ctx.req.body
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise errors.bad_request("Found invalid JSON body in the request.")
    return dict(body)


# --- authentication ----------------------------------------------------------

def login(state, req):
    body = req.body if isinstance(req.body, dict) else {}
    user, password = body.get("username"), body.get("password")
    provider = body.get("loginProviderName") or "tmos"
    if provider not in ("tmos", "local") or not user or state.users.get(user) != password:
        echo = {k: v for k, v in body.items() if k != "password"}
        echo.update({"generation": 0, "lastUpdateMicros": 0})
        raise rest_error(401, "Authentication failed.", referer=req.client,
                         originalRequestBody=json.dumps(echo, separators=(",", ":")))
    token = state.tokens.issue(user, req.client)
    return ok({
        "username": user,
        "loginReference": {"link": "https://localhost/mgmt/cm/system/authn/providers/tmos/"
                                   "1f44a60e-11a7-3c51-a49f-82983026b41b/login"},
        "loginProviderName": provider, "token": token.to_json(),
        "generation": 0, "lastUpdateMicros": 0,
    })


@route(r"/mgmt/shared/authz/tokens/{token}")
def token_item(ctx, token):
    tokens = ctx.state.tokens
    item = tokens.tokens.get(token)
    if item is None:
        raise rest_error(404, "Object with ID %s not found" % token, referer=ctx.req.client)
    if ctx.req.method == "GET":
        return ok(item.to_json())
    if ctx.req.method == "PATCH":
        body = body_dict(ctx)
        if "timeout" in body:
            tokens.set_timeout(item, body["timeout"])
        return ok(item.to_json())
    if ctx.req.method == "DELETE":
        tokens.delete(token)
        return ok(item.to_json())
    raise not_allowed(ctx)


# --- sys -----------------------------------------------------------------------

SYS_CHILDREN = ("application", "clock", "db", "failover", "global-settings", "hardware",
                "management-ip", "performance", "provision", "software", "version")


@route(r"/mgmt/tm/sys")
def sys_root(ctx):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    # f5_modules parse the TMOS version out of this selfLink's ?ver= (reference §10).
    return ok({"kind": "tm:sys:syscollectionstate", "selfLink": ctx.links.link("/mgmt/tm/sys"),
               "items": [{"reference": {"link": ctx.links.link("/mgmt/tm/sys/" + c)}} for c in SYS_CHILDREN]})


@route(r"/mgmt/tm/sys/version")
def sys_version(ctx):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    entries = {"Build": "0.0.0", "Date": "emulated", "Edition": "Emulated",
               "Product": "BIG-IP", "Title": "Main Package", "Version": ctx.state.version}
    return ok({"kind": "tm:sys:version:versionstats", "selfLink": ctx.links.link("/mgmt/tm/sys/version"),
               "entries": {"https://localhost/mgmt/tm/sys/version/0": {"nestedStats": {
                   "entries": {k: {"description": v} for k, v in entries.items()}}}}})


# --- pools -----------------------------------------------------------------------

def _expand(ctx):
    return (ctx.req.query.get("expandSubcollections") or ["false"])[0] == "true"


@route(r"/mgmt/tm/ltm/pool")
def pools(ctx):
    state = ctx.state
    if ctx.req.method == "GET":
        items = [views.pool_json(ctx.links, p, _expand(ctx)) for p in state.pools.values()]
        return ok(views.collection(state, ctx.links, "tm:ltm:pool:poolcollectionstate",
                                   views.POOL_BASE, items, ctx.req.query))
    if ctx.req.method == "POST":
        body = body_dict(ctx)
        name = body.pop("name", None)
        if not name:
            raise errors.bad_request("The name property is required.")
        fp = join_fullpath(body.pop("partition", DEFAULT_PARTITION), name, body.pop("subPath", None))
        members = body.pop("members", [])
        pool = state.create_pool(fp, body)
        for spec in members:
            spec = dict(spec) if isinstance(spec, dict) else {"name": spec}
            mfp = join_fullpath(spec.pop("partition", pool.partition), spec.pop("name"))
            state.create_member(pool, mfp, spec.pop("address", None), spec)
        return ok(views.pool_json(ctx.links, pool))
    raise not_allowed(ctx)


@route(r"/mgmt/tm/ltm/pool/{pool}")
def pool_item(ctx, pool):
    state = ctx.state
    pool = state.pool(url_segment_to_fullpath(pool))
    if ctx.req.method == "GET":
        return ok(views.select(views.pool_json(ctx.links, pool, _expand(ctx)), ctx.req.query))
    if ctx.req.method in ("PATCH", "PUT"):
        body = body_dict(ctx)
        body.pop("members", None)
        state.update_pool(pool, body)
        return ok(views.pool_json(ctx.links, pool))
    if ctx.req.method == "DELETE":
        state.delete_pool(pool)
        return Response(200)
    raise not_allowed(ctx)


# --- pool members ------------------------------------------------------------------

def _checked_member(fp):
    try:
        split_member_name(fp)
    except ValueError:
        raise errors.bad_request("01070734:3: Configuration error: invalid pool member name %s" % fp)
    return fp


def _member_fullpath(segment):
    return _checked_member(url_segment_to_fullpath(segment))


@route(r"/mgmt/tm/ltm/pool/{pool}/members")
def members(ctx, pool):
    state = ctx.state
    pool = state.pool(url_segment_to_fullpath(pool))
    if ctx.req.method == "GET":
        items = [views.member_json(ctx.links, pool, m) for m in pool.members.values()]
        return ok(views.collection(state, ctx.links, "tm:ltm:pool:members:memberscollectionstate",
                                   views.pool_path(pool) + "/members", items, ctx.req.query))
    if ctx.req.method == "POST":
        body = body_dict(ctx)
        name = body.pop("name", None)
        if not name:
            raise errors.bad_request("The name property is required.")
        if "fqdn" in body and (body["fqdn"] or {}).get("tmName"):
            raise errors.bad_request("FQDN pool members are not emulated.")
        fp = _checked_member(join_fullpath(body.pop("partition", DEFAULT_PARTITION), name))
        member = state.create_member(pool, fp, body.pop("address", None), body)
        return ok(views.member_json(ctx.links, pool, member))
    raise not_allowed(ctx)


def _armed_failover(state):
    """A failover a test armed for this moment: the stats answer comes from
    after it (a failover between a client's two reads)."""
    armed, state.failover_at_next_stats = state.failover_at_next_stats, None
    if armed is not None:
        ha.failover(state, *armed)


@route(r"/mgmt/tm/ltm/pool/{pool}/members/stats")
def members_stats(ctx, pool):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    _armed_failover(ctx.state)
    pool = ctx.state.pool(url_segment_to_fullpath(pool))
    return ok(views.members_stats_json(ctx.state, ctx.links, pool))


@route(r"/mgmt/tm/ltm/pool/{pool}/members/{member}")
def member_item(ctx, pool, member):
    state = ctx.state
    pool = state.pool(url_segment_to_fullpath(pool))
    member = state.member(pool, _member_fullpath(member))
    if ctx.req.method == "GET":
        return ok(views.select(views.member_json(ctx.links, pool, member), ctx.req.query))
    if ctx.req.method in ("PATCH", "PUT"):
        state.update_member(pool, member, body_dict(ctx), replace=ctx.req.method == "PUT")
        return ok(views.member_json(ctx.links, pool, member))
    if ctx.req.method == "DELETE":
        state.delete_member(pool, member)
        return Response(200)
    raise not_allowed(ctx)


@route(r"/mgmt/tm/ltm/pool/{pool}/members/{member}/stats")
def member_stats(ctx, pool, member):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    _armed_failover(ctx.state)
    pool = ctx.state.pool(url_segment_to_fullpath(pool))
    member = ctx.state.member(pool, _member_fullpath(member))
    return ok(views.member_stats_json(ctx.state, ctx.links, pool, member))


# --- nodes -------------------------------------------------------------------------

@route(r"/mgmt/tm/ltm/node")
def nodes(ctx):
    state = ctx.state
    if ctx.req.method == "GET":
        items = [views.node_json(ctx.links, n) for n in state.nodes.values()]
        return ok(views.collection(state, ctx.links, "tm:ltm:node:nodecollectionstate",
                                   views.NODE_BASE, items, ctx.req.query))
    if ctx.req.method == "POST":
        body = body_dict(ctx)
        name = body.pop("name", None)
        if not name:
            raise errors.bad_request("The name property is required.")
        fp = join_fullpath(body.pop("partition", DEFAULT_PARTITION), name)
        node = state.create_node(fp, body.pop("address", None), body)
        return ok(views.node_json(ctx.links, node))
    raise not_allowed(ctx)


@route(r"/mgmt/tm/ltm/node/{node}")
def node_item(ctx, node):
    state = ctx.state
    node = state.node(url_segment_to_fullpath(node))
    if ctx.req.method == "GET":
        return ok(views.select(views.node_json(ctx.links, node), ctx.req.query))
    if ctx.req.method in ("PATCH", "PUT"):
        state.update_node(node, body_dict(ctx), replace=ctx.req.method == "PUT")
        return ok(views.node_json(ctx.links, node))
    if ctx.req.method == "DELETE":
        state.delete_node(node)
        return Response(200)
    raise not_allowed(ctx)


@route(r"/mgmt/tm/ltm/node/{node}/stats")
def node_stats(ctx, node):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    node = ctx.state.node(url_segment_to_fullpath(node))
    return ok(views.node_stats_json(ctx.state, ctx.links, node))


# --- tunnels: bigip_pool_member reads both before every update --------------------------

@route(r"/mgmt/tm/net/tunnels/(?P<kind>gre|ipip)")
def tunnels(ctx, kind):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    # No tunnels configured: a device then sends no "items" key at all.
    return ok({"kind": "tm:net:tunnels:%s:%scollectionstate" % (kind, kind),
               "selfLink": ctx.links.link("/mgmt/tm/net/tunnels/" + kind)})


# --- cm: devices, device groups, sync status, config sync (see ha.py) -------------------

def _device_item(ctx, state):
    device = state.device
    return {"kind": "tm:cm:device:devicestate", "name": device.name, "partition": "Common",
            "fullPath": "/Common/" + device.name, "generation": 1,
            "selfLink": ctx.links.link("/mgmt/tm/cm/device/~Common~" + device.name),
            "chassisType": "individual", "edition": "Final", "failoverState": device.failover_state,
            "hostname": device.name, "managementIp": device.management_ip, "product": "BIG-IP",
            "selfDevice": "true" if state is ctx.state else "false", "timeZone": "UTC",
            "version": state.version}


def _devices(ctx):
    return [ctx.state] + ha.peers(ctx.state)


def _groups(ctx):
    """(full path, type, autoSync, device states): the trust group every device has, and the
    sync-failover group of a pair."""
    groups = [("/Common/device_trust_group", "sync-only", True, _devices(ctx))]
    group = ctx.state.group
    if group is not None:
        groups.append((group.fullpath, group.type, group.auto_sync, list(group.members)))
    return groups


def _group_item(ctx, fullpath, kind, auto_sync, devices, expand):
    segment = fullpath.replace("/", "~")
    body = {"kind": "tm:cm:device-group:device-groupstate", "name": fullpath.rsplit("/", 1)[1],
            "partition": "Common", "fullPath": fullpath, "generation": 1,
            "selfLink": ctx.links.link("/mgmt/tm/cm/device-group/" + segment),
            "autoSync": "enabled" if auto_sync else "disabled", "fullLoadOnSync": "false",
            "incrementalConfigSyncSizeMax": 1024,
            "networkFailover": "enabled" if kind == "sync-failover" else "disabled",
            "saveOnAutoSync": "false", "type": kind}
    ref = {"link": ctx.links.link("/mgmt/tm/cm/device-group/%s/devices" % segment), "isSubcollection": True}
    if expand:
        ref["items"] = [_group_device(ctx, segment, s) for s in devices]
    body["devicesReference"] = ref
    return body


def _group_device(ctx, segment, state):
    name = state.device.name
    return {"kind": "tm:cm:device-group:devices:devicesstate", "name": name, "partition": "Common",
            "fullPath": "/Common/" + name, "generation": 1,
            "selfLink": ctx.links.link("/mgmt/tm/cm/device-group/%s/devices/~Common~%s" % (segment, name))}


@route(r"/mgmt/tm/cm/device")
def cm_devices(ctx):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    items = [_device_item(ctx, s) for s in _devices(ctx)]
    return ok(views.collection(ctx.state, ctx.links, "tm:cm:device:devicecollectionstate", "/mgmt/tm/cm/device",
                               items, ctx.req.query))


@route(r"/mgmt/tm/cm/device-group")
def cm_device_groups(ctx):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    items = [_group_item(ctx, *g, expand=_expand(ctx)) for g in _groups(ctx)]
    return ok(views.collection(ctx.state, ctx.links, "tm:cm:device-group:device-groupcollectionstate",
                               "/mgmt/tm/cm/device-group", items, ctx.req.query))


@route(r"/mgmt/tm/cm/device-group/(?P<group>[^/]+)(?P<devices>/devices)?")
def cm_device_group(ctx, group, devices=None):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    wanted = url_segment_to_fullpath(group)
    found = [g for g in _groups(ctx) if g[0] == wanted]
    if not found:
        raise errors.mcpd_error(404, "01020036:3: The requested device group (%s) was not found." % wanted)
    fullpath, kind, auto_sync, members = found[0]
    if not devices:
        return ok(views.select(_group_item(ctx, fullpath, kind, auto_sync, members, _expand(ctx)), ctx.req.query))
    segment = fullpath.replace("/", "~")
    items = [_group_device(ctx, segment, s) for s in members]
    return ok(views.collection(ctx.state, ctx.links, "tm:cm:device-group:devices:devicescollectionstate",
                               "/mgmt/tm/cm/device-group/%s/devices" % segment, items, ctx.req.query))


def _nested(link, entries):
    return {link: {"nestedStats": {"entries": entries}}}


@route(r"/mgmt/tm/cm/sync-status")
def cm_sync_status(ctx):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    status, details = ha.sync_status(ctx.state)
    base = "https://localhost/mgmt/tm/cm/syncStatus/0/details"
    lines = {}
    for index, line in enumerate(details):
        lines.update(_nested("%s/%d" % (base, index), {"details": {"description": line}}))
    entries = {"color": {"description": ha.STATUS_COLOR[status]},
               "mode": {"description": "standalone" if ctx.state.group is None else "high-availability"},
               "status": {"description": status}, "summary": {"description": ha.STATUS_SUMMARY[status]}}
    if lines:
        entries[base] = {"nestedStats": {"entries": lines}}
    return ok({"kind": "tm:cm:sync-status:sync-statusstats", "selfLink": ctx.links.link("/mgmt/tm/cm/sync-status"),
               "entries": _nested("https://localhost/mgmt/tm/cm/sync-status/0", entries)})


@route(r"/mgmt/tm/cm/failover-status")
def cm_failover_status(ctx):
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    state = ctx.state.device.failover_state.upper()
    details = _nested("https://localhost/mgmt/tm/cm/failoverStatus/0/details/0",
                      {"details": {"description": "%s for /Common/traffic-group-1" % state.lower()}})
    entries = {"color": {"description": "green" if state == "ACTIVE" else "gray"},
               "https://localhost/mgmt/tm/cm/failoverStatus/0/details": {"nestedStats": {"entries": details}},
               "status": {"description": state},
               "summary": {"description": "1/1 active" if state == "ACTIVE" else "1/1 standby"}}
    return ok({"kind": "tm:cm:failover-status:failover-statusstats",
               "selfLink": ctx.links.link("/mgmt/tm/cm/failover-status"),
               "entries": _nested("https://localhost/mgmt/tm/cm/failover-status/0", entries)})


@route(r"/mgmt/tm/cm")
def cm_run(ctx):
    """``run cm config-sync to-group <group>`` (bigip_configsync_action sends exactly this)."""
    if ctx.req.method != "POST":
        raise not_allowed(ctx)
    body = body_dict(ctx)
    args = str(body.get("utilCmdArgs") or "").split()
    if body.get("command") != "run" or len(args) < 3 or args[:2] != ["config-sync", "to-group"]:
        raise errors.bad_request("Only 'run' with utilCmdArgs 'config-sync to-group <device group>' is emulated.")
    group = ctx.state.group
    wanted = args[2] if args[2].startswith("/") else "/Common/" + args[2]
    if group is None or group.fullpath != wanted:
        raise errors.mcpd_error(400, "01070734:3: Configuration error: The requested device group (%s) was not "
                                "found." % wanted)
    ha.config_sync(ctx.state)
    return ok({"kind": "tm:cm:runstate", "command": "run", "utilCmdArgs": body["utilCmdArgs"]})


# --- transactions ---------------------------------------------------------------------

@dataclass
class Transaction:
    trans_id: int
    user: str
    state: str = "STARTED"
    commands: list = field(default_factory=list)   # (method, path, query, body)
    failure: str = None

    def to_json(self, links):
        body = {"transId": self.trans_id, "state": self.state, "timeoutSeconds": 120,
                "asyncExecution": False, "validateOnly": False, "executionTimeout": 300,
                "executionTime": 0, "failOnError": False, "kind": "tm:transactionstate",
                "selfLink": links.link("/mgmt/tm/transaction/%d" % self.trans_id)}
        if self.failure:
            body["failureReason"] = self.failure
        return body

    def command_json(self, links, index):
        method, path, _, body = self.commands[index]
        return {"method": method, "uri": links.bare(path), "body": body if body is not None else {},
                "evalOrder": index + 1, "commandId": index + 1, "transId": self.trans_id,
                "kind": "tm:transaction:commandsstate",
                "selfLink": links.link("/mgmt/tm/transaction/%d/commands/%d" % (self.trans_id, index + 1))}


def _transaction(ctx, tid):
    txn = ctx.state.transactions.get(int(tid))
    if txn is None:
        raise errors.mcpd_error(404, "Transaction %s does not exist." % tid, api_error=1)
    return txn


def queue_in_transaction(ctx, tid, path):
    if not str(tid).isdigit():
        raise errors.bad_request("Invalid transaction id %s" % tid)
    txn = _transaction(ctx, tid)
    if txn.state != "STARTED":
        raise errors.bad_request("Transaction %s is in state %s and takes no more commands." % (tid, txn.state))
    txn.commands.append((ctx.req.method, path, ctx.req.query, ctx.req.body))
    return ok(txn.command_json(ctx.links, len(txn.commands) - 1))


@route(r"/mgmt/tm/transaction")
def transactions(ctx):
    state = ctx.state
    if ctx.req.method == "GET":
        items = [t.to_json(ctx.links) for t in state.transactions.values()]
        return ok(views.collection(state, ctx.links, "tm:transactioncollectionstate",
                                   "/mgmt/tm/transaction", items, ctx.req.query))
    if ctx.req.method == "POST":
        trans_id = int(state.now() * 1e6)
        while trans_id in state.transactions:
            trans_id += 1
        txn = Transaction(trans_id, ctx.user)
        state.transactions[trans_id] = txn
        return ok(txn.to_json(ctx.links))
    raise not_allowed(ctx)


@route(r"/mgmt/tm/transaction/{tid}")
def transaction_item(ctx, tid):
    txn = _transaction(ctx, tid)
    if ctx.req.method == "GET":
        return ok(txn.to_json(ctx.links))
    if ctx.req.method == "DELETE":
        del ctx.state.transactions[txn.trans_id]
        return Response(200)
    if ctx.req.method == "PATCH":
        body = body_dict(ctx)
        if body.get("state") != "VALIDATING":
            raise errors.bad_request("A transaction is committed by setting its state to VALIDATING.")
        return commit(ctx, txn, bool(body.get("validateOnly")))
    raise not_allowed(ctx)


@route(r"/mgmt/tm/transaction/{tid}/commands")
def transaction_commands(ctx, tid):
    txn = _transaction(ctx, tid)
    if ctx.req.method != "GET":
        raise not_allowed(ctx)
    items = [txn.command_json(ctx.links, i) for i in range(len(txn.commands))]
    return ok(views.collection(ctx.state, ctx.links, "tm:transaction:commandscollectionstate",
                               "/mgmt/tm/transaction/%d/commands" % txn.trans_id, items, ctx.req.query))


def commit(ctx, txn, validate_only):
    """Replay the queued commands; any failure undoes them all."""
    if txn.state != "STARTED":
        raise errors.bad_request("Transaction %d is in state %s." % (txn.trans_id, txn.state))
    state = ctx.state
    snap = state.snapshot()
    try:
        for method, path, query, body in txn.commands:
            sub = Request(method, path, query, {}, body, ctx.req.client)
            dispatch(Context(state, sub, ctx.user), path)
    except F5Error as exc:
        state.restore(snap)
        txn.state, txn.failure = "FAILED", exc.message
        raise errors.mcpd_error(400, "transaction failed:%s" % txn.failure, api_error=2)
    if validate_only:
        state.restore(snap)
    else:
        state.refresh_traffic()
    txn.state = "COMPLETED"
    return ok(txn.to_json(ctx.links))
