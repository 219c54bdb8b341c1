"""The emulated configuration objects and how a device derives what it reports.

Writable administrative fields are stored as written (``session``/``state``
take only ``user-*`` values). Everything a client *reads* back about health
is derived, the way a device derives it from its monitors: a member written
``state: user-up`` reads ``unchecked`` without a monitor and ``up``/``down``
with one; ``session: user-enabled`` reads ``monitor-enabled`` when monitored
(reference §4, f5-common-python issue 985).
"""
import math
from dataclasses import dataclass, field

from .names import join_member_name, split_fullpath

HEALTH_VALUES = ("up", "down", "checking")


@dataclass
class Node:
    fullpath: str
    address: str
    session: str = "user-enabled"
    state: str = "user-up"
    monitor: str = "default"
    description: str = None
    ratio: int = 1
    connection_limit: int = 0
    rate_limit: str = "disabled"
    dynamic_ratio: int = 1
    logging: str = "disabled"
    generation: int = 1

    @property
    def partition(self):
        return split_fullpath(self.fullpath)[0]

    @property
    def name(self):
        return split_fullpath(self.fullpath)[2]

    @property
    def disabled(self):
        return self.session == "user-disabled"

    @property
    def forced_down(self):
        return self.state == "user-down"


@dataclass
class Traffic:
    """Server-side load on one member, and its drain.

    While a member takes new connections, its current connections/sessions
    equal the load set through the control channel. Once it stops taking
    them (disabled, forced offline, or marked down) they fall linearly at the
    drain rate from the value they had, as clients finish and go away.
    Re-enabling brings the load straight back.
    """
    connections: int = 0
    sessions: int = 0
    rate: object = None          # per-member override of the global drain rate
    drain_start: float = None    # clock time the current drain (re)started from
    drain_conns: float = 0.0
    drain_sessions: float = 0.0
    max_conns: int = 0
    tot_conns: int = 0
    tot_requests: int = 0        # requests the member was sent (POST /_emulator/traffic)
    bits_in: int = 0             # server side: bits the member sent the device (its responses)
    bits_out: int = 0            # server side: bits the device sent the member (the requests)
    persistent: bool = False     # its clients hold persistence records (see keeps_persistent_clients)

    @property
    def draining(self):
        return self.drain_start is not None

    def set_load(self, now, connections=None, sessions=None):
        if connections is not None:
            self.tot_conns += max(0, connections - self.connections)
            self.connections = connections
            self.max_conns = max(self.max_conns, connections)
        if sessions is not None:
            self.sessions = sessions
        if self.draining:
            # A new figure during a drain restarts the drain from it.
            self.drain_start = now
            if connections is not None:
                self.drain_conns = float(connections)
            if sessions is not None:
                self.drain_sessions = float(sessions)

    def serve(self, now, rate, requests, request_bytes, response_bytes):
        """Count one short connection the device opened to the member, the
        ``requests`` it carried and their bytes; it closed again, so only the
        totals (and the peak) keep it."""
        self.tot_conns += 1
        self.max_conns = max(self.max_conns, self.current(now, rate)[0] + 1)
        self.tot_requests += requests
        self.bits_out += 8 * requests * request_bytes
        self.bits_in += 8 * requests * response_bytes

    def start_drain(self, now):
        self.drain_start = now
        self.drain_conns = float(self.connections)
        self.drain_sessions = float(self.sessions)

    def stop_drain(self):
        self.drain_start = None

    def rebase(self, now, rate):
        """Fold the elapsed drain into the start values (before a rate change)."""
        if self.draining:
            self.drain_conns, self.drain_sessions = self._drained(now, rate)
            self.drain_start = now

    def current(self, now, rate):
        """(connections, sessions) as the device would count them now."""
        if not self.draining:
            return self.connections, self.sessions
        conns, sess = self._drained(now, rate)
        # A connection counts until it has fully closed: round up.
        return int(math.ceil(conns - 1e-9)), int(math.ceil(sess - 1e-9))

    def _drained(self, now, rate):
        if self.rate is not None:
            rate = self.rate
        if rate == "hold":
            return self.drain_conns, self.drain_sessions
        gone = float(rate) * max(0.0, now - self.drain_start)
        return max(0.0, self.drain_conns - gone), max(0.0, self.drain_sessions - gone)


@dataclass
class Member:
    node: Node
    port: int
    session: str = "user-enabled"
    state: str = "user-up"
    monitor: str = "default"
    description: str = None
    ratio: int = 1
    priority_group: int = 0
    connection_limit: int = 0
    rate_limit: str = "disabled"
    dynamic_ratio: int = 1
    logging: str = "disabled"
    inherit_profile: str = "enabled"
    profiles: list = None
    generation: int = 1
    health: str = "up"           # what a monitor would report, set by the control channel
    traffic: Traffic = field(default_factory=Traffic)

    @property
    def name(self):
        return join_member_name(self.node.name, self.port)

    @property
    def partition(self):
        return self.node.partition

    @property
    def fullpath(self):
        return join_member_name(self.node.fullpath, self.port)

    @property
    def address(self):
        return self.node.address


@dataclass
class Pool:
    fullpath: str
    monitor: str = None          # e.g. "/Common/http"; None = no monitor
    load_balancing_mode: str = "round-robin"
    description: str = None
    slow_ramp_time: int = 10
    service_down_action: str = "none"
    min_active_members: int = 0
    generation: int = 1
    members: dict = field(default_factory=dict)   # member fullpath -> Member
    lb_credit: dict = field(default_factory=dict)  # member fullpath -> smooth round-robin credit (see pick)

    @property
    def partition(self):
        return split_fullpath(self.fullpath)[0]

    @property
    def sub_path(self):
        return split_fullpath(self.fullpath)[1]

    @property
    def name(self):
        return split_fullpath(self.fullpath)[2]


# --- what a device derives -------------------------------------------------

def member_monitor(pool, member):
    """The monitor rule in force for a member, or None.

    ``default`` on a member means "inherit the pool's monitor"; ``/Common/none``
    switches monitoring off for that member.
    """
    mon = (member.monitor or "default").strip()
    if mon == "default":
        return pool.monitor or None
    if mon in ("none", "/Common/none"):
        return None
    return mon


def read_state(pool, member):
    """The ``state`` field a GET returns."""
    if member.state == "user-down":
        return "user-down"
    if member_monitor(pool, member):
        return member.health
    return "unchecked"


def read_session(pool, member):
    """The ``session`` field a GET returns."""
    if member.session == "user-disabled":
        return "user-disabled"
    return "monitor-enabled" if member_monitor(pool, member) else "user-enabled"


def read_node_state(node):
    return "user-down" if node.forced_down else "unchecked"


@dataclass
class Status:
    availability: str      # available | offline | unknown
    enabled: str           # enabled | disabled | disabled-by-parent
    reason: str
    monitor_status: str    # up | down | unchecked | checking | forced down
    session_status: str    # enabled | user-disabled | addr-disabled
    monitor_rule: str


def member_status(pool, member):
    """The ``status.*`` / ``monitorStatus`` / ``sessionStatus`` view of the stats.

    Confirmed by public captures of ``show ltm pool members field-fmt`` on real
    devices (the REST stats carry the same fields in camelCase): an enabled
    member reads ``sessionStatus enabled``/``status.enabledState enabled``; a
    disabled one ``user-disabled``/``disabled``, its reason gaining ", user
    disabled" only when it is available (an unchecked disabled member keeps
    "does not have service checking enabled"); a forced-offline one has the
    reason "Forced down"; under a disabled node the member reads
    ``disabled-by-parent`` with its reason unchanged. Inferred, not captured:
    ``monitorStatus`` "forced down" and the values under a forced-down node.
    """
    mon = member_monitor(pool, member)
    rule = "none"
    if mon:
        rule = mon + (" (pool monitor)" if (member.monitor or "default") == "default" else "")
    node = member.node
    if member.state == "user-down" or node.forced_down:
        avail, reason, mstat = "offline", "Forced down", "forced down"
    elif mon and member.health == "up":
        avail, reason, mstat = "available", "Pool member is available", "up"
    elif mon and member.health == "down":
        avail, reason, mstat = "offline", "Pool member has been marked down by a monitor", "down"
    elif mon:
        avail, reason, mstat = "unknown", "Pool member is being checked", "checking"
    else:
        avail, reason, mstat = "unknown", "Pool member does not have service checking enabled", "unchecked"

    if member.session == "user-disabled":
        enabled, session = "disabled", "user-disabled"
        if avail == "available":
            reason += ", user disabled"
    elif node.disabled:
        enabled, session = "disabled-by-parent", "addr-disabled"
    else:
        enabled, session = "enabled", "enabled"
    return Status(avail, enabled, reason, mstat, session, rule)


def takes_new_connections(pool, member):
    """False once the member is disabled, forced offline or marked down."""
    if member.session == "user-disabled" or member.state == "user-down":
        return False
    if member.node.disabled or member.node.forced_down:
        return False
    if member_monitor(pool, member) and member.health == "down":
        return False
    return True


def lb_weight(pool, member):
    """A member's weight in the pool's load balancing: its ratio in the
    ``ratio-*`` modes, else 1 (round robin and the rest spread evenly)."""
    if (pool.load_balancing_mode or "").startswith("ratio"):
        return max(1, int(member.ratio or 1))
    return 1


def pick(pool, members):
    """The member the next new connection goes to: smooth weighted round
    robin over ``members`` (the ones taking new connections), deterministic,
    so each gets its weight's share of any run of connections."""
    total = 0
    best = None
    for member in members:
        weight = lb_weight(pool, member)
        total += weight
        credit = pool.lb_credit.get(member.fullpath, 0) + weight
        pool.lb_credit[member.fullpath] = credit
        if best is None or credit > pool.lb_credit[best.fullpath]:
            best = member
    if best is not None:
        pool.lb_credit[best.fullpath] -= total
    return best


def keeps_persistent_clients(pool, member):
    """A *disabled* member still takes the connections of clients that hold a
    persistence record for it (K13310), so with such clients its load does not
    fall; *forced offline* ends that, and the load drains."""
    return (member.traffic.persistent and member.session == "user-disabled" and member.state != "user-down"
            and not member.node.forced_down)
