"""The emulated device's configuration and runtime state, shared by REST, SOAP
and the control channel.

Every request handler holds ``State.lock`` for the whole request, so each
request sees and leaves a consistent device, as mcpd serialises changes.
Write helpers raise ``F5Error`` with the device's own messages.
"""
import copy
import ipaddress
import threading

from . import errors
from .auth import TokenStore
from .clock import Clock
from .ha import Device
from .model import HEALTH_VALUES, Member, Node, Pool, keeps_persistent_clients, member_status, pick, \
    read_session, read_state, takes_new_connections
from .names import DEFAULT_PARTITION, is_ip_address, join_fullpath, split_fullpath, \
    split_member_name, split_route_domain, with_route_domain
from .requestlog import Faults, RequestLog

DEFAULT_VERSION = "15.1.10"

# REST property name -> (model attribute, kind). One table serves POST, PUT,
# PATCH and seeding, so a property means the same thing on every path.
MEMBER_PROPS = {
    "session": ("session", "session"), "state": ("state", "state"),
    "monitor": ("monitor", str), "description": ("description", str),
    "ratio": ("ratio", int), "priorityGroup": ("priority_group", int),
    "connectionLimit": ("connection_limit", int), "rateLimit": ("rate_limit", "rate"),
    "dynamicRatio": ("dynamic_ratio", int), "logging": ("logging", str),
    "inheritProfile": ("inherit_profile", str), "profiles": ("profiles", list),
}
NODE_PROPS = {
    "session": ("session", "session"), "state": ("state", "state"),
    "monitor": ("monitor", str), "description": ("description", str),
    "ratio": ("ratio", int), "connectionLimit": ("connection_limit", int),
    "rateLimit": ("rate_limit", "rate"), "dynamicRatio": ("dynamic_ratio", int),
    "logging": ("logging", str),
}
POOL_PROPS = {
    "monitor": ("monitor", "monitor"), "description": ("description", str),
    "loadBalancingMode": ("load_balancing_mode", str), "slowRampTime": ("slow_ramp_time", int),
    "serviceDownAction": ("service_down_action", str), "minActiveMembers": ("min_active_members", int),
}
# Read-only or identifying properties a client may echo back in a PUT/PATCH.
IGNORED_PROPS = {"kind", "name", "partition", "fullPath", "generation", "selfLink", "address",
                 "ephemeral", "fqdn", "subPath", "membersReference", "nameReference"}

WRITABLE_SESSION = ("user-enabled", "user-disabled")
WRITABLE_STATE = ("user-up", "user-down")


def parse_drain_rate(value):
    """A drain rate: connections per second (>= 0), or 'hold' (never falls)."""
    if value == "hold":
        return "hold"
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError("drain rate must be a number of connections per second or 'hold', not %r" % (value,))
    if rate < 0:
        raise ValueError("drain rate must not be negative")
    return rate


def _coerce(name, value, kind):
    if kind == "session":
        if value not in WRITABLE_SESSION:
            raise errors.bad_property(name, value)
        return value
    if kind == "state":
        if value not in WRITABLE_STATE:
            raise errors.bad_property(name, value)
        return value
    if kind == "rate":
        if value == "disabled" or value == 0:
            return "disabled"
        kind = int
    if kind == "monitor":
        # Pools store no monitor as absent; "" and "none" both clear it.
        value = (value or "").strip()
        return None if value in ("", "none", "/Common/none") else value
    if kind is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise errors.bad_property(name, value)
    if kind is list:
        if not isinstance(value, list):
            raise errors.bad_property(name, value)
        return value
    return str(value)


def _normal_address(address):
    """Comparable form of an address: route domain 0 is the same as none."""
    ip, rd = split_route_domain(address)
    try:
        return ipaddress.ip_address(ip), rd or 0
    except ValueError:
        return address, rd or 0


ROLES = ("admin", "operator", "guest")


class State:
    def __init__(self, clock=None, drain_rate=1.0, version=DEFAULT_VERSION, lock=None, device=None):
        # The devices of an HA pair share one lock (see ha.py).
        self.lock = lock or threading.RLock()
        self.device = device or Device()
        self.group = None                          # ha.DeviceGroup when paired
        self.clock = clock or Clock()
        self.version = version
        self.drain_rate = parse_drain_rate(drain_rate)
        self.partitions = {DEFAULT_PARTITION: 0}   # name -> default route domain
        self.folders = set()                       # "/Common/app"
        self.nodes = {}                            # fullpath -> Node
        self.pools = {}                            # fullpath -> Pool
        self.users = {"admin": "admin"}
        self.roles = {}                            # user -> role; absent means admin
        self.tokens = TokenStore(self.clock)
        self.transactions = {}
        self.requests = RequestLog()
        self.faults = Faults()
        # (active device name, move_connections): a failover armed to happen
        # right before the next member stats request is answered.
        self.failover_at_next_stats = None
        self._generation = 1

    def now(self):
        return self.clock.time()

    def next_generation(self):
        self._generation += 1
        return self._generation

    # --- containers ---------------------------------------------------------

    def add_partition(self, name, default_route_domain=0):
        self.partitions[name] = int(default_route_domain or 0)

    def add_folder(self, path):
        partition = split_fullpath(path)[0]
        self.check_container(join_fullpath(partition, "x"))
        self.folders.add("/" + path.strip("/"))

    def container_exists(self, fullpath):
        partition, sub, _ = split_fullpath(fullpath)
        if partition not in self.partitions:
            return False
        return not sub or "/%s/%s" % (partition, sub) in self.folders

    def check_container(self, fullpath):
        if not self.container_exists(fullpath):
            partition, sub, _ = split_fullpath(fullpath)
            raise errors.folder_not_found("/%s/%s" % (partition, sub) if sub and partition in self.partitions
                                          else "/" + partition)

    # --- lookups ------------------------------------------------------------

    def pool(self, fullpath):
        pool = self.pools.get(fullpath)
        if pool is None:
            # An unknown partition or folder reads exactly like an unknown pool.
            raise errors.pool_not_found(fullpath)
        return pool

    def member(self, pool, member_fullpath):
        member = pool.members.get(member_fullpath)
        if member is None:
            node_fp, port = split_member_name(member_fullpath)
            raise errors.member_not_found(pool.fullpath, node_fp, port)
        return member

    def node(self, fullpath):
        node = self.nodes.get(fullpath)
        if node is None:
            raise errors.node_not_found(fullpath)
        return node

    def pools_of_node(self, node):
        return [p for p in self.pools.values() if any(m.node is node for m in p.members.values())]

    # --- pools --------------------------------------------------------------

    def create_pool(self, fullpath, props=None):
        self.check_container(fullpath)
        if fullpath in self.pools:
            raise errors.pool_exists(fullpath, split_fullpath(fullpath)[0])
        pool = Pool(fullpath, generation=self.next_generation())
        self._apply(pool, POOL_PROPS, props or {})
        self.pools[fullpath] = pool
        return pool

    def update_pool(self, pool, props):
        self._apply(pool, POOL_PROPS, props)
        pool.generation = self.next_generation()
        self.refresh_traffic()

    def delete_pool(self, pool):
        del self.pools[pool.fullpath]

    # --- nodes --------------------------------------------------------------

    def create_node(self, fullpath, address=None, props=None):
        """Create a node; with no address the name must itself be an address."""
        self.check_container(fullpath)
        if fullpath in self.nodes:
            raise errors.node_exists(fullpath, split_fullpath(fullpath)[0])
        name = split_fullpath(fullpath)[2]
        if not address:
            if not is_ip_address(name):
                raise errors.node_not_found(fullpath)
            address = name
        if not is_ip_address(address):
            raise errors.bad_property("address", address)
        address = with_route_domain(address, self.partitions[split_fullpath(fullpath)[0]])
        wanted = _normal_address(address)
        if any(_normal_address(n.address) == wanted for n in self.nodes.values()):
            raise errors.node_address_taken(address)
        node = Node(fullpath, address, generation=self.next_generation())
        self._apply(node, NODE_PROPS, props or {})
        self.nodes[fullpath] = node
        return node

    def update_node(self, node, props, replace=False):
        if replace:
            fresh = Node(node.fullpath, node.address)
            for attr, _ in NODE_PROPS.values():
                setattr(node, attr, getattr(fresh, attr))
        self._apply(node, NODE_PROPS, props)
        node.generation = self.next_generation()
        self.refresh_traffic()

    def delete_node(self, node):
        users = self.pools_of_node(node)
        if users:
            raise errors.node_referenced(node.fullpath, users[0].fullpath)
        del self.nodes[node.fullpath]

    # --- members ------------------------------------------------------------

    def node_for_member(self, node_fp, address):
        """The node a new member stands on: an existing node of that name (whose
        address must match), or a new one, as a device auto-creates it."""
        node = self.nodes.get(node_fp)
        if node is None:
            return self.create_node(node_fp, address)
        if address:
            rd = self.partitions.get(node.partition, 0)
            if _normal_address(with_route_domain(address, rd)) != _normal_address(node.address):
                raise errors.node_address_mismatch(node_fp, node.fullpath)
        return node

    def create_member(self, pool, member_fp, address=None, props=None):
        node_fp, port = split_member_name(member_fp)
        if member_fp in pool.members:
            raise errors.member_exists(pool.fullpath, node_fp, port, split_fullpath(node_fp)[0])
        self.check_container(node_fp)
        node = self.node_for_member(node_fp, address)
        member = Member(node, port, generation=self.next_generation())
        self._apply(member, MEMBER_PROPS, props or {})
        pool.members[member.fullpath] = member
        self.refresh_traffic()
        return member

    def update_member(self, pool, member, props, replace=False):
        if replace:
            fresh = Member(member.node, member.port)
            for attr, _ in MEMBER_PROPS.values():
                setattr(member, attr, getattr(fresh, attr))
        self._apply(member, MEMBER_PROPS, props)
        member.generation = self.next_generation()
        self.refresh_traffic()

    def delete_member(self, pool, member):
        del pool.members[member.fullpath]

    def _apply(self, obj, table, props):
        unknown = [k for k in props if k not in table and k not in IGNORED_PROPS]
        if unknown:
            raise errors.bad_request('Property "%s" is not emulated for this object '
                                     '(lab/f5_emulator/README.md lists what is).' % unknown[0])
        values = {table[k][0]: _coerce(k, v, table[k][1]) for k, v in props.items() if k in table}
        for attr, value in values.items():
            setattr(obj, attr, value)

    # --- runtime ------------------------------------------------------------

    def refresh_traffic(self):
        """Start or stop each member's drain to match its admin/health state."""
        now = self.now()
        for pool in self.pools.values():
            for member in pool.members.values():
                open_ = takes_new_connections(pool, member) or keeps_persistent_clients(pool, member)
                if not open_ and not member.traffic.draining:
                    member.traffic.start_drain(now)
                elif open_ and member.traffic.draining:
                    member.traffic.stop_drain()

    def set_drain_rate(self, rate):
        rate = parse_drain_rate(rate)
        now = self.now()
        for pool in self.pools.values():
            for member in pool.members.values():
                member.traffic.rebase(now, self.drain_rate)
        self.drain_rate = rate

    def set_member_drain_rate(self, member, rate):
        member.traffic.rebase(self.now(), self.drain_rate)
        member.traffic.rate = None if rate is None else parse_drain_rate(rate)

    def set_health(self, member, health):
        if health not in HEALTH_VALUES:
            raise ValueError("health must be one of %s" % ", ".join(HEALTH_VALUES))
        member.health = health
        self.refresh_traffic()

    def current_load(self, member):
        return member.traffic.current(self.now(), self.drain_rate)

    def send_traffic(self, pool, connections, requests_per_connection=1, request_bytes=0, response_bytes=0):
        """Send ``connections`` new client connections to ``pool`` as its
        virtual server would: each goes to the next member that takes new
        connections (load balancing by ``pick``) and carries
        ``requests_per_connection`` requests. The members' totals count
        exactly what they were sent. With no member taking connections the
        device has nowhere to send them: they are refused, counted on none.
        Returns {member full path: connections it got} and ``refused``."""
        now = self.now()
        sent = {}
        refused = 0
        for _ in range(int(connections)):
            open_ = [m for m in pool.members.values() if takes_new_connections(pool, m)]
            member = pick(pool, open_)
            if member is None:
                refused += 1
                continue
            member.traffic.serve(now, self.drain_rate, int(requests_per_connection), int(request_bytes),
                                 int(response_bytes))
            sent[member.fullpath] = sent.get(member.fullpath, 0) + 1
        return {"members": sent, "refused": refused}

    # --- transactions need all-or-nothing ------------------------------------

    def snapshot(self):
        # One deepcopy call, so members keep pointing at the copied nodes.
        return copy.deepcopy((self.partitions, self.folders, self.nodes, self.pools, self._generation))

    def restore(self, snap):
        self.partitions, self.folders, self.nodes, self.pools, self._generation = snap

    # --- seeding and inspection ---------------------------------------------

    def seed(self, doc):
        """Load a seed document (see README: "Seed file")."""
        for part in doc.get("partitions", []):
            if isinstance(part, str):
                self.add_partition(part)
            else:
                self.add_partition(part["name"], part.get("default_route_domain", 0))
        for folder in doc.get("folders", []):
            self.add_folder(folder)
        self.users.update(doc.get("users", {}))
        self.set_roles(doc.get("roles", {}))
        if "drain_rate" in doc:
            self.set_drain_rate(doc["drain_rate"])
        if "token_timeout" in doc:
            self.tokens.default_timeout = int(doc["token_timeout"])
        if "max_tokens" in doc:
            self.tokens.max_per_user = int(doc["max_tokens"])
        for spec in doc.get("nodes", []):
            spec = dict(spec)
            fp = join_fullpath(spec.pop("partition", DEFAULT_PARTITION), spec.pop("name"))
            address = spec.pop("address", None)
            if fp in self.nodes:
                self.update_node(self.nodes[fp], spec)
            else:
                self.create_node(fp, address, spec)
        for spec in doc.get("pools", []):
            spec = dict(spec)
            members = spec.pop("members", [])
            fp = join_fullpath(spec.pop("partition", DEFAULT_PARTITION), spec.pop("name"), spec.pop("subPath", None))
            pool = self.pools.get(fp) or self.create_pool(fp)
            self.update_pool(pool, spec)
            for mspec in members:
                self.seed_member(pool, dict(mspec))
        self.refresh_traffic()

    def seed_member(self, pool, spec):
        runtime = {k: spec.pop(k) for k in ("connections", "sessions", "health", "drain_rate", "persistent")
                   if k in spec}
        fp = join_fullpath(spec.pop("partition", pool.partition), spec.pop("name"))
        address = spec.pop("address", None)
        member = pool.members.get(fp)
        if member is None:
            member = self.create_member(pool, fp, address, spec)
        else:
            self.update_member(pool, member, spec)
        self.set_runtime(member, **runtime)
        return member

    def set_runtime(self, member, connections=None, sessions=None, health=None, drain_rate=None, persistent=None):
        if persistent is not None:
            member.traffic.persistent = bool(persistent)
        if connections is not None or sessions is not None:
            member.traffic.set_load(self.now(), None if connections is None else int(connections),
                                    None if sessions is None else int(sessions))
        if drain_rate is not None:
            self.set_member_drain_rate(member, None if drain_rate == "default" else drain_rate)
        if health is not None:
            self.set_health(member, health)
        self.refresh_traffic()

    def role_of(self, user):
        return self.roles.get(user, "admin")

    def set_roles(self, roles):
        for user, role in roles.items():
            if role not in ROLES:
                raise ValueError("role must be one of %s, not %r" % (", ".join(ROLES), role))
            self.roles[user] = role

    def reset(self):
        self.partitions = {DEFAULT_PARTITION: 0}
        self.folders = set()
        self.nodes = {}
        self.pools = {}
        self.transactions = {}

    def describe_member(self, pool, member):
        conns, sessions = self.current_load(member)
        status = member_status(pool, member)
        return {
            "pool": pool.fullpath, "name": member.name, "fullPath": member.fullpath,
            "address": member.address, "port": member.port, "node": member.node.fullpath,
            "session": member.session, "state": member.state,
            "readSession": read_session(pool, member), "readState": read_state(pool, member),
            "health": member.health, "availability": status.availability, "enabled": status.enabled,
            "connections": conns, "sessions": sessions,
            "loadConnections": member.traffic.connections, "loadSessions": member.traffic.sessions,
            "totalConnections": member.traffic.tot_conns, "totalRequests": member.traffic.tot_requests,
            "draining": member.traffic.draining, "persistent": member.traffic.persistent,
            "drainRate": member.traffic.rate if member.traffic.rate is not None else self.drain_rate,
        }

    def dump(self):
        return {
            "version": self.version, "drain_rate": self.drain_rate,
            "token_timeout": self.tokens.default_timeout, "max_tokens": self.tokens.max_per_user,
            "active_tokens": len(self.tokens.active()),
            "partitions": [{"name": n, "default_route_domain": rd} for n, rd in sorted(self.partitions.items())],
            "folders": sorted(self.folders),
            "nodes": [{"fullPath": n.fullpath, "address": n.address, "session": n.session, "state": n.state}
                      for n in self.nodes.values()],
            "pools": [{"fullPath": p.fullpath, "monitor": p.monitor,
                       "members": [self.describe_member(p, m) for m in p.members.values()]}
                      for p in self.pools.values()],
        }

    def find_members(self, pool=None, member=None, address=None, port=None):
        """(pool, member) pairs matching a control-channel selector."""
        found = []
        for p in self.pools.values():
            if pool and p.fullpath != pool and p.name != pool:
                continue
            for m in p.members.values():
                if member and member not in (m.fullpath, m.name):
                    continue
                if address and _normal_address(address) != _normal_address(m.address) and address != m.node.name:
                    continue
                if port is not None and int(port) != m.port:
                    continue
                found.append((p, m))
        return found
