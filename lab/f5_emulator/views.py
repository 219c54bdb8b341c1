"""JSON renderings of emulated objects, in the shapes of real device captures
(reference §4, §5, §7). Links always say ``https://localhost`` and carry
``?ver=``, as on a device; clients must rewrite the host themselves.
"""
from urllib.parse import quote

from . import errors
from .model import member_status, read_node_state, read_session, read_state
from .names import fullpath_to_url_segment, split_fullpath

POOL_BASE = "/mgmt/tm/ltm/pool"
NODE_BASE = "/mgmt/tm/ltm/node"


class Links:
    def __init__(self, version):
        self.version = version

    def link(self, path, query=""):
        query = (query + "&") if query else ""
        return "https://localhost%s?%sver=%s" % (path, query, self.version)

    @staticmethod
    def bare(path):
        return "https://localhost" + path


def pool_path(pool):
    return "%s/%s" % (POOL_BASE, fullpath_to_url_segment(pool.fullpath))


def member_path(pool, member):
    return "%s/members/%s" % (pool_path(pool), fullpath_to_url_segment(member.fullpath))


def node_path(node):
    return "%s/%s" % (NODE_BASE, fullpath_to_url_segment(node.fullpath))


def _identity(kind, obj, self_link):
    partition, sub, name = split_fullpath(obj.fullpath)
    body = {"kind": kind, "name": name, "partition": partition}
    if sub:
        body["subPath"] = sub
    body.update({"fullPath": obj.fullpath, "generation": obj.generation, "selfLink": self_link})
    return body


def member_json(links, pool, member):
    body = _identity("tm:ltm:pool:members:membersstate", member, links.link(member_path(pool, member)))
    body.update({
        "address": member.address, "connectionLimit": member.connection_limit,
        "dynamicRatio": member.dynamic_ratio, "ephemeral": "false",
        "fqdn": {"autopopulate": "disabled"}, "inheritProfile": member.inherit_profile,
        "logging": member.logging, "monitor": member.monitor, "priorityGroup": member.priority_group,
        "rateLimit": member.rate_limit, "ratio": member.ratio,
        "session": read_session(pool, member), "state": read_state(pool, member),
    })
    if member.description:
        body["description"] = member.description
    if member.profiles:
        body["profiles"] = member.profiles
    return body


def pool_json(links, pool, expand=False):
    body = _identity("tm:ltm:pool:poolstate", pool, links.link(pool_path(pool)))
    body.update({
        "allowNat": "yes", "allowSnat": "yes", "ignorePersistedWeight": "disabled",
        "ipTosToClient": "pass-through", "ipTosToServer": "pass-through",
        "linkQosToClient": "pass-through", "linkQosToServer": "pass-through",
        "loadBalancingMode": pool.load_balancing_mode, "minActiveMembers": pool.min_active_members,
        "minUpMembers": 0, "minUpMembersAction": "failover", "minUpMembersChecking": "disabled",
    })
    if pool.monitor:
        body["monitor"] = pool.monitor
    body.update({
        "queueDepthLimit": 0, "queueOnConnectionLimit": "disabled", "queueTimeLimit": 0,
        "reselectTries": 0, "serviceDownAction": pool.service_down_action,
        "slowRampTime": pool.slow_ramp_time,
    })
    if pool.description:
        body["description"] = pool.description
    ref = {"link": links.link(pool_path(pool) + "/members"), "isSubcollection": True}
    if expand and pool.members:
        ref["items"] = [member_json(links, pool, m) for m in pool.members.values()]
    body["membersReference"] = ref
    return body


def node_json(links, node):
    body = _identity("tm:ltm:node:nodestate", node, links.link(node_path(node)))
    body.update({
        "address": node.address, "connectionLimit": node.connection_limit,
        "dynamicRatio": node.dynamic_ratio, "ephemeral": "false",
        "fqdn": {"addressFamily": "ipv4", "autopopulate": "disabled", "downInterval": 5, "interval": "3600"},
        "logging": node.logging, "monitor": node.monitor, "rateLimit": node.rate_limit,
        "ratio": node.ratio, "session": node.session, "state": read_node_state(node),
    })
    if node.description:
        body["description"] = node.description
    return body


# --- stats (12.x+ nested shape) ---------------------------------------------

def _zero(*names):
    return {n: {"value": 0} for n in names}


def member_stat_entries(state, pool, member):
    conns, sessions = state.current_load(member)
    status = member_status(pool, member)
    entries = {"addr": {"description": member.address}}
    entries.update(_zero("connq.ageEdm", "connq.ageEma", "connq.ageHead", "connq.ageMax",
                         "connq.depth", "connq.serviced"))
    entries.update({
        "curSessions": {"value": sessions},
        "monitorRule": {"description": status.monitor_rule},
        "monitorStatus": {"description": status.monitor_status},
        "nodeName": {"description": member.node.fullpath},
        "poolName": {"description": pool.fullpath},
        "port": {"value": member.port},
        "serverside.bitsIn": {"value": member.traffic.bits_in},
        "serverside.bitsOut": {"value": member.traffic.bits_out},
        "serverside.curConns": {"value": conns},
        "serverside.maxConns": {"value": member.traffic.max_conns},
        "serverside.pktsIn": {"value": 0}, "serverside.pktsOut": {"value": 0},
        "serverside.totConns": {"value": member.traffic.tot_conns},
        "sessionStatus": {"description": status.session_status},
        "status.availabilityState": {"description": status.availability},
        "status.enabledState": {"description": status.enabled},
        "status.statusReason": {"description": status.reason},
        "totRequests": {"value": member.traffic.tot_requests},
    })
    return entries


def member_stats_json(state, links, pool, member):
    path = member_path(pool, member) + "/stats"
    return {"kind": "tm:ltm:pool:members:membersstats", "generation": member.generation,
            "selfLink": links.link(path),
            "entries": {links.bare(path): {"nestedStats": {"entries": member_stat_entries(state, pool, member)}}}}


def members_stats_json(state, links, pool):
    entries = {}
    for member in pool.members.values():
        path = member_path(pool, member) + "/stats"
        entries[links.bare(path)] = {"nestedStats": {
            "kind": "tm:ltm:pool:members:membersstats", "selfLink": links.link(path),
            "entries": member_stat_entries(state, pool, member)}}
    return {"kind": "tm:ltm:pool:members:memberscollectionstats",
            "selfLink": links.link(pool_path(pool) + "/members/stats"), "entries": entries}


def node_stats_json(state, links, node):
    members = [(p, m) for p in state.pools.values() for m in p.members.values() if m.node is node]
    conns = sum(state.current_load(m)[0] for _, m in members)
    sessions = sum(state.current_load(m)[1] for _, m in members)
    if node.forced_down:
        avail, reason, mstat = "offline", "Forced down", "forced down"
    else:
        avail, reason, mstat = "unknown", "Node address does not have service checking enabled", "unchecked"
    enabled = "disabled" if node.disabled else "enabled"
    if node.disabled and avail != "offline":
        reason += ", user disabled"
    path = node_path(node) + "/stats"
    entries = {
        "addr": {"description": node.address}, "curSessions": {"value": sessions},
        "monitorRule": {"description": "none"}, "monitorStatus": {"description": mstat},
        "serverside.bitsIn": {"value": sum(m.traffic.bits_in for _, m in members)},
        "serverside.bitsOut": {"value": sum(m.traffic.bits_out for _, m in members)},
        "serverside.curConns": {"value": conns},
        "serverside.maxConns": {"value": sum(m.traffic.max_conns for _, m in members)},
        "serverside.pktsIn": {"value": 0}, "serverside.pktsOut": {"value": 0},
        "serverside.totConns": {"value": sum(m.traffic.tot_conns for _, m in members)},
        "sessionStatus": {"description": "user-disabled" if node.disabled else "enabled"},
        "status.availabilityState": {"description": avail},
        "status.enabledState": {"description": enabled},
        "status.statusReason": {"description": reason},
        "tmName": {"description": node.fullpath},
        "totRequests": {"value": sum(m.traffic.tot_requests for _, m in members)},
    }
    return {"kind": "tm:ltm:node:nodestats", "generation": node.generation, "selfLink": links.link(path),
            "entries": {links.bare(path): {"nestedStats": {"entries": entries}}}}


# --- collections and OData-style queries --------------------------------------

def select(item, query):
    fields = query.get("$select")
    if not fields:
        return item
    wanted = [f.strip() for f in fields[0].split(",") if f.strip()]
    return {k: item[k] for k in wanted if k in item}


def _filter(items, query, state):
    expr = (query.get("$filter") or [""])[0].strip()
    if not expr:
        return items
    clauses = []
    for clause in expr.split(" and "):
        parts = clause.split()
        if len(parts) != 3 or parts[1] != "eq":
            raise errors.bad_request("Query parameter $filter is invalid: %s" % expr)
        field, value = parts[0], parts[2].strip("'\"")
        if field == "partition" and value not in state.partitions:
            raise errors.folder_not_found("/" + value)
        clauses.append((field, value))
    return [i for i in items if all(str(i.get(f)) == v for f, v in clauses)]


def _int_param(query, name):
    raw = (query.get(name) or [None])[0]
    if raw is None:
        return None
    if not raw.isdigit():
        raise errors.bad_request("Query parameter %s must be a non-negative integer" % name)
    return int(raw)


def _query_string(query, **override):
    pairs = [(k, v[0]) for k, v in query.items() if k != "ver"]
    pairs = [(k, v) for k, v in pairs if k not in override] + [(k, str(v)) for k, v in override.items()]
    return "&".join("%s=%s" % (k, quote(v, safe=",$")) for k, v in pairs)


def collection(state, links, kind, path, items, query):
    """A collection body with $filter, $select, $top and $skip applied.

    Like a device, an empty page carries no ``items`` key at all, and a paged
    answer (``$top`` given) adds the paging fields and a ``nextLink``.
    """
    items = _filter(items, query, state)
    top, skip = _int_param(query, "$top"), _int_param(query, "$skip") or 0
    body = {"kind": kind, "selfLink": links.link(path, _query_string(query))}
    page = items[skip:] if top is None else items[skip:skip + top]
    if top is not None:
        total = len(items)
        per_page = max(top, 1)
        body.update({
            "currentItemCount": len(page), "itemsPerPage": top,
            "pageIndex": skip // per_page + 1, "startIndex": skip + 1,
            "totalItems": total, "totalPages": (total + per_page - 1) // per_page,
        })
        if skip + top < total:
            body["nextLink"] = links.link(path, _query_string(query, **{"$top": top, "$skip": skip + top}))
        if skip > 0:
            body["previousLink"] = links.link(path, _query_string(query, **{"$top": top,
                                                                             "$skip": max(0, skip - top)}))
    if page:
        body["items"] = [select(i, query) for i in page]
    return body
