"""Devices, device groups and config sync: an HA pair of emulated BIG-IPs.

What F5 documents (and F5's own ``bigip_configsync_action`` relies on), and
what this module reproduces:

* Every device reports itself in ``/mgmt/tm/cm/device`` (``managementIp``,
  ``failoverState`` ``active``/``standby``, ``selfDevice``) and its device
  groups in ``/mgmt/tm/cm/device-group`` (``type`` ``sync-failover`` or
  ``sync-only``, ``autoSync`` ``enabled``/``disabled``). A standalone device
  has only its ``sync-only`` ``device_trust_group``.
* A pool member's admin state is configuration. In a ``sync-failover`` group
  with ``autoSync: disabled`` a change stays on the device where it was made:
  the group reads ``Changes Pending`` until someone runs
  ``config-sync to-group <group>`` (``POST /mgmt/tm/cm``), and a failover in
  between hands traffic to a peer that never got the change. With
  ``autoSync: enabled`` every change reaches the peers at once.
* A failover makes the standby active. With connection mirroring the
  connections carry over; the emulator moves each member's current
  connections to the new active (``move_connections``), where they drain or
  not according to *that* device's copy of the member.

Inferred, not captured: the colours and ``summary`` texts of
``/mgmt/tm/cm/sync-status`` (its ``status`` strings are those F5's module
matches: ``In Sync``, ``Changes Pending``, ``Standalone``), and that a sync is
instantaneous (a device takes seconds and passes through ``Not All Devices
Synced``).

Every device of a group shares one lock (``State.lock``), so a request on one
device may read and write its peers.
"""
import copy
import json
from dataclasses import dataclass, field


@dataclass
class Device:
    name: str = "bigip1.example.com"
    management_ip: str = "127.0.0.1"
    failover_state: str = "active"          # active | standby (a standalone device is active)


@dataclass
class DeviceGroup:
    fullpath: str = "/Common/failover-dg"
    type: str = "sync-failover"
    auto_sync: bool = False
    members: list = field(default_factory=list)     # State objects, in device order

    @property
    def name(self):
        return self.fullpath.rsplit("/", 1)[1]


STATUS_COLOR = {"In Sync": "green", "Changes Pending": "blue", "Standalone": "black"}
STATUS_SUMMARY = {"In Sync": "All devices in the device group are in sync",
                  "Changes Pending": "There is a possible change conflict between the devices",
                  "Standalone": " "}


def join(states, group):
    """Put the given device states into one group (they must share one lock)."""
    for state in states:
        if state.lock is not states[0].lock:
            raise ValueError("the devices of a group must share one lock")
        state.group = group
    group.members = list(states)


def peers(state):
    group = state.group
    return [s for s in group.members if s is not state] if group else []


def ltm_config(state):
    """The synchronised part of a device's configuration, comparable between devices."""
    nodes = {fp: (n.address, n.session, n.state, n.monitor, n.ratio, n.connection_limit, n.description)
             for fp, n in state.nodes.items()}
    pools = {}
    for fp, pool in state.pools.items():
        members = {mfp: (m.session, m.state, m.ratio, m.priority_group, m.connection_limit, m.monitor,
                         m.description) for mfp, m in pool.members.items()}
        pools[fp] = (pool.monitor, pool.load_balancing_mode, pool.description, members)
    return json.dumps([sorted(state.partitions.items()), sorted(state.folders), nodes, pools], sort_keys=True,
                      default=str)


def sync_status(state):
    """(status, details) as ``/mgmt/tm/cm/sync-status`` reports them on this device."""
    group = state.group
    if group is None:
        return "Standalone", []
    mine = ltm_config(state)
    in_sync = all(ltm_config(other) == mine for other in group.members)
    status = "In Sync" if in_sync else "Changes Pending"
    details = ["%s (%s): %s" % (group.fullpath, status, "All devices in the device group are in sync"
                                if in_sync else "There is a possible change conflict between the devices")]
    details += ["%s: connected" % other.device.name for other in group.members]
    return status, details


def config_sync(source):
    """``config-sync to-group``: copy the source device's configuration to every peer."""
    for target in peers(source):
        copy_config(source, target)


def after_change(state):
    """Called after every configuration write: automatic sync, if the group has it."""
    if state.group is not None and state.group.auto_sync:
        config_sync(state)


def copy_config(source, target):
    """Make ``target``'s configuration that of ``source``, keeping each member's
    runtime (connections, drain, monitor verdict) on the target."""
    now = target.now()
    target.partitions = dict(source.partitions)
    target.folders = set(source.folders)
    runtime = {}
    for pool in target.pools.values():
        for member in pool.members.values():
            runtime[(pool.fullpath, member.fullpath)] = (member.traffic, member.health)
    nodes = copy.deepcopy(source.nodes)
    pools = {}
    for fp, pool in source.pools.items():
        fresh = copy.copy(pool)
        fresh.members = {}
        for mfp, member in pool.members.items():
            clone = copy.copy(member)
            clone.node = nodes[member.node.fullpath]
            kept = runtime.get((fp, mfp))
            if kept is not None:
                clone.traffic, clone.health = kept
            else:
                clone.traffic = copy.deepcopy(member.traffic)
                clone.traffic.set_load(now, 0, 0)
            fresh.members[mfp] = clone
        pools[fp] = fresh
    target.nodes = nodes
    target.pools = pools
    target.refresh_traffic()


def failover(state, active_name, move_connections=True):
    """Make the named device of ``state``'s group active and the others standby."""
    group = state.group
    if group is None:
        raise ValueError("this device is standalone: there is nothing to fail over to")
    names = [s.device.name for s in group.members]
    if active_name not in names:
        raise ValueError("no device %r in group %s (devices: %s)" % (active_name, group.fullpath, ", ".join(names)))
    new = [s for s in group.members if s.device.name == active_name][0]
    old = [s for s in group.members if s.device.failover_state == "active" and s is not new]
    for member_state in group.members:
        member_state.device.failover_state = "active" if member_state is new else "standby"
    if move_connections:
        for previous in old:
            _move_connections(previous, new)
    return new


def _move_connections(source, target):
    now = source.now()
    for fp, pool in source.pools.items():
        other = target.pools.get(fp)
        for mfp, member in pool.members.items():
            conns, sessions = source.current_load(member)
            if other is not None and mfp in other.members:
                moved = other.members[mfp]
                moved.traffic.rate = member.traffic.rate
                moved.traffic.set_load(now, conns, sessions)
            member.traffic.set_load(now, 0, 0)
    source.refresh_traffic()
    target.refresh_traffic()
