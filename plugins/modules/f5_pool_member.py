#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: f5_pool_member
short_description: Put an F5 BIG-IP pool member in rotation, drain it, or remove it from its pools
version_added: 0.1.0
author:
  - gentle.lb contributors (@gentle-lb)
description:
  - Sets the administrative state of one member in one, several or all pools of a BIG-IP LTM partition
    through iControl REST (or iControl SOAP for old devices), then waits until the goal is reached
    (connections drained, or the member available again).
  - The administrative state is the pair of fields C(session) and C(state), and both are always sent.
    What a device reads back is derived from its monitors (C(monitor-enabled), C(up), C(unchecked)...), so
    reads are mapped to an admin state (RV(members[].admin_state)), never compared literally.
  - Acts only on a difference; C(changed) comes from the admin state and the ratio only, never from
    connection counts. Check mode only reads (HTTP C(GET)s).
  - Reads a pool in two requests whatever its size (the members collection and its C(/stats)). After a write
    the pool's stats are read again to check the capacity floor, and every look while waiting reads stats only,
    of the member itself (of the whole pool when the call selects more than two of its members); the stats
    carry the admin state too, so a member that somebody else re-enables during the wait is seen and put back.
    With the login token cached (O(token_cache)), draining one member costs four requests.
  - Node objects are never deleted or changed, so a node shared with other pools is safe.
  - F5 support is tested against an emulator built from F5's documentation and public captures of real
    devices (C(lab/f5_emulator) in the source repository), not against a device.
options:
  pool:
    description:
      - The pool(s) the member belongs to, by name in O(partition) (V(web)) or by full path (V(/Common/app/web)).
      - Omitted, the member is acted on in every pool of O(partition) that has it, and all of them are
        waited on together (the pools are listed once, with their members, in one request).
    type: list
    elements: str
  partition:
    description:
      - The partition of the pools (and of nodes created for new members).
      - If not set, the environment variable E(F5_PARTITION) is used, then V(Common).
    type: str
    default: Common
  name:
    description:
      - The member name (V(web1:80), V(10.0.0.1:80), V(10.0.0.3%2:80), V(2001:db8::10.443) - IPv6 members use
        C(.) before the port) or the node name (V(web1), V(10.0.0.1)), without partition.
      - A node name without O(port) selects the node's members on every port.
      - For O(state=present) of a member that does not exist yet, the node name to use (an existing node
        of that name, or the name of the node to create with O(address)).
      - A list names several members. They are read once, planned together, checked by one capacity guard
        that counts them all (O(min_active)), written, and waited on together.
      - At least one of O(name) and O(address) is required. When both are given, both must match; as lists,
        they must have the same length and are paired in order.
    type: list
    elements: str
  address:
    description:
      - The member's IP address, with a route domain as V(10.0.0.3%2) if it has one, or a list of them. IPv6
        addresses are compared as addresses, so any spelling works.
      - Without C(%N) it matches the address in any route domain (a partition's default route domain is
        read back as C(%N)); with C(%N) only that route domain.
    type: list
    elements: str
    aliases: [ip, host]
  port:
    description:
      - The member's port. Required to add a member.
    type: int
  state:
    description:
      - V(present) - in rotation, C(session=user-enabled) and C(state=user-up) (the GUI's I(Enabled)). A member
        missing from a pool named in O(pool) is added (C(POST .../members)); an existing node of that address
        is reused, else the device creates the node. Waits until the member's availability is C(available)
        or C(unknown) (no monitor).
      - V(drained) - no new sessions; existing ones finish; monitors go on. C(session=user-disabled),
        C(state=user-up) (I(Disabled)), or with O(drain_mode=forced_offline) C(state=user-down)
        (I(Forced Offline)). Waits until C(serverside.curConns) and C(curSessions) of the member are at or
        below O(drain_threshold) in every pool concerned.
      - V(absent) - removed from the pool. Drained and waited on as for V(drained), then the member is
        deleted (C(DELETE .../members/...)). The node is never deleted, as another pool may use it.
        A member already gone from a pool that exists is success with C(changed=false).
    type: str
    choices: [present, drained, absent]
    default: present
  drain_mode:
    description:
      - How V(drained) (and the drain before V(absent)) takes the member out of rotation.
      - V(disabled) - C(user-disabled)/C(user-up). Persistent connections (an existing persistence record)
        may still reach the member. A member already I(Forced Offline) is left so (it takes even less).
      - V(forced_offline) - C(user-disabled)/C(user-down). Only connections already open continue.
        A member that is only I(Disabled) is changed to I(Forced Offline).
    type: str
    choices: [disabled, forced_offline]
    default: disabled
  weight:
    description:
      - The member's ratio (F5's word for weight, V(1) to V(65535)) for O(state=present); it is set when
        given and kept otherwise. Returned as RV(members[].weight).
      - Ignored for V(drained) and V(absent) (the ratio is kept while draining), so the same options can
        be passed to the drain and the restore call.
      - Setting it needs a role that may modify pool members (not F5's Operator role).
      - Not available with O(transport=soap).
    type: int
    aliases: [ratio]
  force_offline_after:
    description:
      - The persistence ladder for O(state=drained) and O(state=absent) with O(drain_mode=disabled). I(Disabled)
        still admits persistent and active connections (F5 article K13310), so a drain may never end. After
        this many seconds of waiting, the members still holding sessions are forced offline (only the
        connections already open go on), and the wait goes on until O(wait_timeout); then O(on_timeout) applies.
      - RV(drain_ended_by) says which step ended the drain.
      - Not set (the default), a drain stays I(Disabled) until O(wait_timeout).
    type: float
  config_sync:
    description:
      - On a device in a sync-failover device group with manual sync, run C(config-sync to-group) after the
        change (before waiting), and wait until the group reads C(In Sync), so that a failover does not hand
        traffic to a peer that still has the member enabled.
      - Skipped, with a warning, when the group was already out of sync before the change (a sync would push
        the other pending changes too). Needs a user whose role may run a config sync (not F5's Operator role).
      - V(false) (the default) leaves the group as it is and warns that the peer lacks the change. Groups with
        automatic sync need nothing. Needs O(transport=rest).
    type: bool
    default: false
extends_documentation_fragment:
  - gentle.lb.f5_connection
  - gentle.lb.waiting
  - gentle.lb.guard
  - gentle.lb.action_group
  - gentle.lb.action_group.F5
notes:
  - "Admin states: V(present) = C(session: user-enabled) + C(state: user-up); V(drained) = C(session: user-disabled) +
    C(state: user-up), or C(state: user-down) with O(drain_mode=forced_offline); V(absent) = the member deleted from the
    pool (the node object is kept)."
  - "O(on_timeout=force) forces the members still holding connections offline (C(user-disabled)/C(user-down)).
    That is all iControl can do to a member: it stops persistence from sending new connections, but connections
    already open continue until they close (ending them needs C(tmsh delete sys connection ss-server-addr ...)
    with shell rights). The result message says how many were still open. With O(state=absent) the member is
    then deleted anyway, with a warning."
  - The capacity guard counts a member in rotation when it is enabled (C(user-enabled)/C(monitor-enabled), not
    forced down) and healthy when its availability is C(available) or C(unknown).
  - Tokens are requested with login provider C(tmos) and kept for the next task (O(token_cache)), or deleted at
    the end with O(token_cache=false), also when the task fails. A refused token leads to one new login; a second
    refusal fails. When token login is not available, basic authentication is used (local users only).
  - "HA pairs: before the first change the device group's sync status is read (warned about when it is not
    C(In Sync)); while waiting, the device's failover state is read with every look, and when the device has become
    standby the wait follows the failover to the new active device (its management address from
    C(/mgmt/tm/cm/device), the same port and credentials), where the member is put back into O(state) if that
    device's copy lacks it."
  - "Least privilege: a user with F5's Operator role can drain and restore members (O(state=present) and
    O(state=drained) only toggle C(session)/C(state)); adding or removing members, setting the ratio and
    O(config_sync=true) need more, and fail with C(error_type=PermissionDeniedError) naming the missing
    permission."
  - "Reads are retried with back-off (0.25 s doubling to 2 s, three retries) on 5xx answers and dropped
    connections; writes are never retried: after a dropped write, run the task again."
  - "To verify the device certificate against your own CA, keep O(validate_certs=true) and set E(REQUESTS_CA_BUNDLE)
    (or E(CURL_CA_BUNDLE)) to the CA bundle, for example with the task's C(environment:). With
    O(validate_certs=false) those variables are ignored."
  - "O(transport=soap) needs C(bigsuds): C(pip install --no-deps bigsuds suds-community six) (bigsuds declares
    C(suds-jurko), which does not build on Python 3.11+). It uses C(LocalLB.Pool) calls, selects members by node
    name or by an IP-address node name, and cannot set the ratio or create a named node."
requirements:
  - requests (O(transport=rest))
  - bigsuds, suds-community and six (O(transport=soap))
seealso:
  - module: gentle.lb.f5_pool_member_info
  - name: iControl REST pool member reference
    description: The C(ltm pool members) resource and its C(session)/C(state) fields.
    link: https://clouddocs.f5.com/api/icontrol-rest/APIRef_tm_ltm_pool_members.html
"""

EXAMPLES = r"""
# Ad hoc (connection from F5_SERVER, F5_USER, F5_PASSWORD, F5_VALIDATE_CERTS):
#   ansible localhost -m gentle.lb.f5_pool_member -a "pool=web address=10.0.0.13 port=80 state=drained"
#   ansible localhost -m gentle.lb.f5_pool_member -a "name=10.0.0.13:80 state=present"       # every pool
#   ansible localhost -m gentle.lb.f5_pool_member -a "pool=web name=10.0.0.13:80 state=absent"

- name: Drain 10.0.0.13:80 in pool web and wait until its connections are gone
  gentle.lb.f5_pool_member:
    provider:
      server: bigip.example.com
      user: admin
      password: "{{ vault_f5_password }}"
    pool: web
    address: 10.0.0.13
    port: 80
    state: drained
    wait_timeout: 600
  delegate_to: localhost

- name: A play whose tasks share the connection settings
  hosts: app
  serial: 1
  module_defaults:
    group/gentle.lb.lb:
      server: bigip.example.com
      user: deploy
      password: "{{ vault_f5_password }}"
  tasks:
    - name: Force the member offline in every pool of partition DMZ that has it
      gentle.lb.f5_pool_member:
        partition: DMZ
        address: "{{ ansible_host }}%2"
        port: 443
        state: drained
        drain_mode: forced_offline
        min_active: "50%"
      delegate_to: localhost

    - name: Back in rotation, with ratio 2
      gentle.lb.f5_pool_member:
        partition: DMZ
        address: "{{ ansible_host }}%2"
        port: 443
        state: present
        weight: 2
      delegate_to: localhost

- name: Drain through persistence, on an HA pair with manual sync
  gentle.lb.f5_pool_member:
    pool: web
    address: 10.0.0.13
    port: 80
    state: drained
    force_offline_after: 120   # then forced offline: persistent clients go elsewhere
    wait_timeout: 600
    config_sync: true          # the standby gets the drain before any failover
  delegate_to: localhost
  register: drain

- name: Say which step ended the drain
  ansible.builtin.debug:
    msg: "{{ drain.drain_ended_by }}"

- name: Add an IPv6 member (on an existing node of that address, or a new node named web6)
  gentle.lb.f5_pool_member:
    pool: web6
    name: web6
    address: "2001:db8::10"
    port: 443
    state: present
  delegate_to: localhost

- name: Remove a member from two pools after draining it; the node stays
  gentle.lb.f5_pool_member:
    pool: [web, api]
    name: 10.0.0.13:80
    state: absent
    on_timeout: force
  delegate_to: localhost
"""

RETURN = r"""
members:
  description: One entry per member in scope (per pool), as it is after the call.
  returned: always
  type: list
  elements: dict
  contains:
    container:
      description: The pool, as a full path.
      type: str
      sample: /Common/web
    name:
      description: The member name (C(<node>:<port>), IPv6 C(<node>.<port>)).
      type: str
      sample: "10.0.0.13:80"
    address:
      description: The member's address as the device reports it (with C(%N) in a route domain).
      type: str
      sample: 10.0.0.13
    port:
      description: The member's port.
      type: int
      sample: 80
    state_before:
      description:
        - The state before the call, V(present), V(drained) or V(absent) (V(disabled) when
          O(drain_mode=forced_offline) and the member was only disabled).
      type: str
      sample: present
    state:
      description: The state now (in check mode, the state the call would set).
      type: str
      sample: drained
    weight_before:
      description: The ratio before the call.
      type: int
      sample: 1
    weight:
      description: The ratio now.
      type: int
      sample: 1
    sessions:
      description: The larger of RV(members[].connections) and RV(members[].current_sessions), the number a drain waits on.
      type: int
      sample: 0
    health:
      description: V(up) (availability C(available)), V(unknown) (no monitor, or checking), V(down) (C(offline)).
      type: str
      sample: up
    full_path:
      description: The member's full path.
      type: str
      sample: /Common/10.0.0.13:80
    partition:
      description: The member's partition.
      type: str
      sample: Common
    node:
      description: The node's full path.
      type: str
      sample: /Common/10.0.0.13
    admin_state:
      description: The admin state behind the monitor-derived read, V(enabled), V(disabled) or V(forced_offline).
      type: str
      sample: disabled
    f5_session:
      description: The C(session) field as read (C(monitor-enabled), C(user-enabled), C(user-disabled)).
      type: str
      sample: user-disabled
    f5_state:
      description: The C(state) field as read (C(up), C(down), C(unchecked), C(checking), C(user-down), ...).
      type: str
      sample: up
    availability:
      description: C(status.availabilityState) from the stats (C(available), C(offline), C(unknown)).
      type: str
      sample: available
    enabled_status:
      description: C(status.enabledState) from the stats (C(enabled), C(disabled), C(disabled-by-parent)).
      type: str
      sample: disabled
    status_reason:
      description: C(status.statusReason) from the stats.
      type: str
      sample: Pool member is available, user disabled
    connections:
      description: C(serverside.curConns).
      type: int
      sample: 0
    current_sessions:
      description: C(curSessions).
      type: int
      sample: 0
    total_connections:
      description:
        - C(serverside.totConns), the connections the device opened to the member since its statistics
          were last reset (a reboot, a failover to a peer, C(tmsh reset-stats)); null when the stats were not read.
        - With M(gentle.lb.f5_pool_member_info), two readings give the member's share of a pool's new connections
          over a window (the C(gentle.lb.rolling_deploy) analysis gate).
      type: int
      sample: 1520
    total_requests:
      description:
        - C(totRequests), the requests the member was sent; a device counts them only for virtual servers with an
          HTTP profile (0 otherwise). Null when the stats were not read.
      type: int
      sample: 20311
    max_connections:
      description: C(serverside.maxConns), the most connections the member had at once; null when not read.
      type: int
      sample: 12
    bits_in:
      description: C(serverside.bitsIn), bits the member sent the device (its answers); null when not read.
      type: int
      sample: 81920
    bits_out:
      description: C(serverside.bitsOut), bits the device sent the member; null when not read.
      type: int
      sample: 20480
    priority_group:
      description: The member's priority group (null with O(transport=soap)).
      type: int
      sample: 0
    connection_limit:
      description: The member's connection limit (null with O(transport=soap)).
      type: int
      sample: 0
waited:
  description: Seconds spent waiting for the goal.
  returned: always
  type: float
  sample: 2.35
reasserted:
  description: How many times a member was put back into the requested state after somebody else changed it
    during the wait (see O(reassert)), on the device or, after a failover, on the new active one.
  returned: always
  type: int
  sample: 0
error_type:
  description: On failure, the class of the error, for example V(GuardRefusedError), V(WaitTimeoutError),
    V(StateLostError), V(NotFoundError), V(UnreachableError), V(PermissionDeniedError), V(InvalidInputError).
    Match on this, not on RV(msg).
  returned: failure
  type: str
  sample: PermissionDeniedError
guard:
  description: On a capacity guard refusal, per pool holding a selected member, its number of members, how
    many are in rotation and healthy (V(active)), how many must stay (V(needed)), which selected members would
    leave (V(leaving)) and how many of them may leave now (V(may_leave)).
  returned: when error_type is GuardRefusedError
  type: list
  elements: dict
  sample: [{"container": "/Common/web", "members": 4, "active": 4, "needed": 3, "leaving": ["10.0.0.1:80"],
            "may_leave": 1}]
drain_ended_by:
  description:
    - With O(force_offline_after), the step that ended the drain, V(disabled), V(forced_offline) or V(on_timeout)
      (still open at O(wait_timeout), ended by O(on_timeout=continue) or V(force)).
  returned: when O(force_offline_after) is set, for O(state=drained) and O(state=absent) with O(wait)
  type: str
  sample: forced_offline
msg:
  description: One line saying what was done.
  returned: always
  type: str
  sample: "member 10.0.0.13:80 in pool /Common/web: drained, goal reached after 2.35s"
diff:
  description: Admin state and ratio of every member in scope, before and after.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.gentle.lb.plugins.module_utils import f5, member, specs

MEMBER_ARGS = dict(
    pool=dict(type="list", elements="str"),
    partition=dict(type="str", default="Common", fallback=(env_fallback, ["F5_PARTITION"])),
    name=dict(type="list", elements="str"),
    address=dict(type="list", elements="str", aliases=["ip", "host"]),
    port=dict(type="int"),
    state=dict(type="str", default="present", choices=list(member.STATES)),
    drain_mode=dict(type="str", default="disabled", choices=list(f5.DRAIN_MODES)),
    weight=dict(type="int", aliases=["ratio"]),
    force_offline_after=dict(type="float"),
    config_sync=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(
        argument_spec=specs.argument_spec(MEMBER_ARGS, specs.F5_CONNECTION_ARGS, specs.WAIT_ARGS, specs.GUARD_ARGS),
        required_one_of=[["name", "address"]], supports_check_mode=True)
    params = module.params
    try:
        selectors = f5.MemberSelector.many(params["name"], params["address"], params["port"])
        pools = [f5.pool_path(pool, params["partition"]) for pool in params["pool"] or []]
        request = specs.request_from_params(params, selectors, pools, weight=params["weight"],
                                            options=dict(drain_mode=params["drain_mode"]))
        grace = f5.check_ladder(params["force_offline_after"], params["drain_mode"])

        def connect():
            return f5.connect(specs.f5_connection(params), params["partition"], params["drain_mode"],
                              config_sync=params["config_sync"])
        if grace is None:
            result = member.run(connect(), request, check_mode=module.check_mode)
        else:
            result = f5.run_escalating(connect(), connect, request, grace, check_mode=module.check_mode)
    except member.LBError as error:
        specs.fail_with(module, error)
    specs.exit_with(module, result)


if __name__ == "__main__":
    main()
