#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: member
short_description: Drain or restore members on any supported balancer, chosen by type
version_added: 0.2.0
author:
  - gentle.lb developers (@gentle-lb)
description:
  - One entry point for every balancer of the collection, as M(ansible.builtin.package) is for package
    managers - O(type) picks the member module, and every other option is passed to it unchanged.
  - V(haproxy) runs M(gentle.lb.haproxy_member), V(ipvs) M(gentle.lb.ipvs_member), V(f5)
    M(gentle.lb.f5_pool_member), V(health_file) M(gentle.lb.health_file_member), V(lvs_director)
    M(gentle.lb.keepalived_member). Their documentation lists the options, which are checked by the module.
  - The module_defaults of the chosen module (and of its action groups, such as C(group/gentle.lb.lb)) apply.
  - The C(gentle.lb.rolling_deploy) role makes every drain and restore through this action, one call per
    balancer for a whole batch of hosts.
options:
  type:
    description: The kind of balancer, which chooses the module.
    type: str
    required: true
    choices: [haproxy, ipvs, f5, health_file, lvs_director]
  options:
    description:
      - The chosen module's options as one mapping, for calls built from data (a loop over computed calls)
        without templating the task's whole arguments. Options given directly to the task win.
    type: dict
  read:
    description:
      - Read instead of write - run the type's C(*_info) module (M(gentle.lb.haproxy_member_info),
        M(gentle.lb.ipvs_member_info), M(gentle.lb.f5_pool_member_info)) with the other options. Not available
        for V(health_file) and V(lvs_director) (whose own option O(gentle.lb.health_file_member#module:info), HAProxy's view of a
        V(health_file) binding, is passed on to its module like every other option).
      - The C(gentle.lb.rolling_deploy) role's analysis gate reads HAProxy's traffic counters this way.
    type: bool
    default: false
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: As the chosen module (every one supports check mode).
  diff_mode:
    support: full
    details: As the chosen module.
  platform:
    platforms: posix
notes:
  - The options other than O(type) are not listed here; see the chosen module.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - gentle.lb.action_group.LB
seealso:
  - module: gentle.lb.haproxy_member
  - module: gentle.lb.ipvs_member
  - module: gentle.lb.f5_pool_member
  - module: gentle.lb.health_file_member
  - module: gentle.lb.keepalived_member
"""

EXAMPLES = r"""
- name: Drain three servers of a batch in one call, guarded together
  gentle.lb.member:
    type: haproxy
    backend: app
    server: [web1, web2, web3]
    socket: /run/haproxy/admin.sock
    state: drained
  delegate_to: lb1

- name: Calls built from data
  gentle.lb.member:
    type: "{{ item.type }}"
    options: "{{ item.options }}"
  delegate_to: "{{ item.host }}"
  loop: "{{ calls }}"
  loop_control:
    label: "{{ item.type }} via {{ item.host }}"

- name: The same drain on an LVS director run by keepalived
  gentle.lb.member:
    type: lvs_director
    address: [10.1.0.11, 10.1.0.12, 10.1.0.13]
    state: drained
  delegate_to: director1
  become: true
"""

RETURN = r"""
type:
  description: The O(type) that chose the module.
  returned: always
  type: str
  sample: haproxy
module:
  description: The module that ran.
  returned: always
  type: str
  sample: gentle.lb.haproxy_member
started:
  description: When the call started, seconds since the epoch on the controller.
  returned: always
  type: float
  sample: 1767000000.123
ended:
  description: When the call ended, seconds since the epoch on the controller.
  returned: always
  type: float
  sample: 1767000000.973
elapsed:
  description: Seconds the call took, seen from the controller.
  returned: always
  type: float
  sample: 0.85
call_failed:
  description: Whether the chosen module failed - kept even when the task's C(failed_when) says otherwise, so a
    loop of calls can be read back result by result.
  returned: always
  type: bool
  sample: false
members:
  description: As returned by the chosen module.
  returned: always
  type: list
  elements: dict
waited:
  description: As returned by the chosen module.
  returned: always
  type: float
  sample: 0.31
error_type:
  description: On failure, as returned by the chosen module (C(GuardRefusedError), C(WaitTimeoutError), ...).
  returned: on failure
  type: str
  sample: GuardRefusedError
guard:
  description: On a capacity-guard refusal, as returned by the chosen module.
  returned: on a guard refusal
  type: list
  elements: dict
msg:
  description: As returned by the chosen module.
  returned: always
  type: str
"""
