#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: f5_pool_member_info
short_description: Read F5 BIG-IP pool members with their admin state and live connection counts
version_added: 0.1.0
author:
  - gentle.lb contributors (@gentle-lb)
description:
  - Returns the members of one, several or all pools of a BIG-IP LTM partition, in the same shape as
    M(gentle.lb.f5_pool_member) returns them, without changing anything.
  - Each pool costs two requests whatever its size (the members collection and its C(/stats)); with no
    O(pool), one request lists every pool of the partition with its members first.
  - The admin state is mapped from the monitor-derived C(session)/C(state) the device reads back
    (RV(members[].admin_state)); see M(gentle.lb.f5_pool_member) for the mapping.
  - F5 support is tested against an emulator built from F5's documentation and public captures of real
    devices, not against a device.
options:
  pool:
    description:
      - The pool(s) to read, by name in O(partition) or by full path. Omitted, every pool of O(partition).
    type: list
    elements: str
  partition:
    description:
      - The partition of the pools.
      - If not set, the environment variable E(F5_PARTITION) is used, then V(Common).
    type: str
    default: Common
  name:
    description:
      - Return only this member (V(10.0.0.1:80), V(2001:db8::10.443)) or the members of this node (V(web1)).
    type: str
  address:
    description:
      - Return only members of this address (V(10.0.0.3%2) for a route domain; without C(%N) any route domain).
    type: str
    aliases: [ip, host]
  port:
    description:
      - Return only members on this port.
    type: int
extends_documentation_fragment:
  - gentle.lb.f5_connection
  - gentle.lb.action_group.INFO_MODULE
  - gentle.lb.action_group.F5
requirements:
  - requests (O(transport=rest))
  - bigsuds, suds-community and six (O(transport=soap))
seealso:
  - module: gentle.lb.f5_pool_member
"""

EXAMPLES = r"""
# Ad hoc:  ansible localhost -m gentle.lb.f5_pool_member_info -a "pool=web"

- name: Every member of every pool in Common, with live connection counts
  gentle.lb.f5_pool_member_info:
    provider:
      server: bigip.example.com
      user: admin
      password: "{{ vault_f5_password }}"
  delegate_to: localhost
  register: f5_members

- name: Where is 10.0.0.13 and how many connections does it hold?
  gentle.lb.f5_pool_member_info:
    address: 10.0.0.13
  delegate_to: localhost
  register: where

- name: A play whose tasks share the connection settings
  hosts: localhost
  module_defaults:
    group/gentle.lb.lb:
      server: bigip.example.com
      user: monitor
      password: "{{ vault_f5_password }}"
  tasks:
    - name: Members of two pools in partition DMZ
      gentle.lb.f5_pool_member_info:
        partition: DMZ
        pool: [web, api]
"""

RETURN = r"""
members:
  description: The members, one entry per member and pool.
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
    state:
      description: V(present) (enabled) or V(drained) (disabled or forced offline).
      type: str
      sample: present
    weight:
      description: The ratio.
      type: int
      sample: 1
    sessions:
      description: The larger of RV(members[].connections) and RV(members[].current_sessions).
      type: int
      sample: 4
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
      description: V(enabled), V(disabled) or V(forced_offline), mapped from the monitor-derived read.
      type: str
      sample: enabled
    f5_session:
      description: The C(session) field as read.
      type: str
      sample: monitor-enabled
    f5_state:
      description: The C(state) field as read.
      type: str
      sample: up
    availability:
      description: C(status.availabilityState) (C(available), C(offline), C(unknown)).
      type: str
      sample: available
    enabled_status:
      description: C(status.enabledState) (C(enabled), C(disabled), C(disabled-by-parent)).
      type: str
      sample: enabled
    status_reason:
      description: C(status.statusReason).
      type: str
      sample: Pool member is available
    connections:
      description: C(serverside.curConns).
      type: int
      sample: 4
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
msg:
  description: How many members were read.
  returned: always
  type: str
  sample: "12 member(s) in pool /Common/web"
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.gentle.lb.plugins.module_utils import f5, member, specs

INFO_ARGS = dict(
    pool=dict(type="list", elements="str"),
    partition=dict(type="str", default="Common", fallback=(env_fallback, ["F5_PARTITION"])),
    name=dict(type="str"),
    address=dict(type="str", aliases=["ip", "host"]),
    port=dict(type="int"),
)


def main():
    module = AnsibleModule(argument_spec=specs.argument_spec(INFO_ARGS, specs.F5_CONNECTION_ARGS),
                           supports_check_mode=True)
    params = module.params
    try:
        selector = f5.MemberSelector.filter(params["name"], params["address"], params["port"])
        pools = [f5.pool_path(pool, params["partition"]) for pool in params["pool"] or []] or None
        backend = f5.connect(specs.f5_connection(params), params["partition"], selector=selector)
        result = member.describe(backend, pools, selector)
    except member.LBError as error:
        specs.fail_with(module, error)
    specs.exit_with(module, result)


if __name__ == "__main__":
    main()
