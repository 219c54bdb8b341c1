#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ipvs_member_info
short_description: Read the virtual services and real servers of an LVS/IPVS director
version_added: 0.1.0
author:
  - gentle.lb developers (@gentle-lb)
description:
  - Returns the virtual services of the director and their destinations (real servers), with
    weight, state, forwarding method, thresholds, tunnel options and connection counts, in the
    same shape as M(gentle.lb.ipvs_member) returns them. Optionally traffic counters and rates.
  - Reads C(ipvsadm -Ln --exact) in the C(--tun-info), C(--thresholds) and C(--persistent-conn)
    formats (and C(--stats), C(--rate) when asked), all in one C(ipvsadm -R) run. Never changes anything.
notes:
  - "State mapping: V(present) = weight above 0, V(drained) = weight 0. IPVS has no health view:
    C(health) is always V(unknown)."
  - Requires C(ipvsadm) and root (or C(CAP_NET_ADMIN)) on the director; use C(become).
options:
  virtual_service:
    description:
      - Only these virtual services (see M(gentle.lb.ipvs_member) for the spelling, for example
        V(tcp:192.168.100.11:80), V(udp:[2001:db8::1]:53), V(fwmark:7), V(fwmark6:7)). All when omitted.
      - A virtual service that does not exist is an error.
    type: list
    elements: str
  address:
    description:
      - Only the destinations of these real server addresses.
    type: list
    elements: str
  port:
    description:
      - Only destinations on this real-server port.
    type: int
  count_inactive:
    description:
      - Count C(InActConn) in C(sessions), as M(gentle.lb.ipvs_member) does with this option.
    type: bool
    default: false
  count_persistent:
    description:
      - Count C(PersistConn) in C(sessions), as M(gentle.lb.ipvs_member) does with this option.
    type: bool
    default: false
  stats:
    description:
      - Also return the traffic counters of C(ipvsadm -Ln --stats --exact) per service and destination.
    type: bool
    default: false
  rates:
    description:
      - Also return the rates of C(ipvsadm -Ln --rate --exact) per service and destination. The kernel
        estimates them about every two seconds, so they lag behind the traffic.
    type: bool
    default: false
  timeout:
    description:
      - Seconds one C(ipvsadm) run may take at most; past it the process is killed and the task fails
        (C(error_type=UnreachableError)).
    type: float
    default: 30
extends_documentation_fragment:
  - gentle.lb.action_group.INFO_MODULE
  - gentle.lb.action_group.IPVS
seealso:
  - module: gentle.lb.ipvs_member
"""

EXAMPLES = r"""
# Ad hoc:
#   ansible director -b -m gentle.lb.ipvs_member_info -a "address=192.168.100.78"

- name: Read everything the director balances
  gentle.lb.ipvs_member_info:
  become: true
  register: lvs

- name: Show the real servers that are drained
  ansible.builtin.debug:
    msg: "{{ lvs.members | selectattr('state', 'equalto', 'drained') | map(attribute='name') | list }}"

- name: One service, with rates
  gentle.lb.ipvs_member_info:
    virtual_service: tcp:192.168.100.11:80
    rates: true
  become: true

- name: In a play, with the action group's defaults
  hosts: director
  module_defaults:
    group/gentle.lb.lb:
      count_inactive: true
  tasks:
    - name: Connections still open on web3
      gentle.lb.ipvs_member_info:
        address: 192.168.100.78
      become: true
      register: web3
"""

RETURN = r"""
members:
  description: One entry per destination (per virtual service).
  returned: always
  type: list
  elements: dict
  contains:
    container:
      description: The virtual service, as V(tcp:10.0.0.100:80), V(udp:[2001:db8::1]:53) or V(fwmark:7).
      type: str
      sample: tcp:10.0.0.100:80
    name:
      description: The destination as C(ADDRESS:PORT) (IPv6 in brackets).
      type: str
      sample: 192.168.100.78:80
    address:
      description: The real server's address (IPv6 compressed, lower-case).
      type: str
      sample: 192.168.100.78
    port:
      description: The real server's port.
      type: int
      sample: 80
    state:
      description: V(present) (weight above 0) or V(drained) (weight 0).
      type: str
      sample: present
    weight:
      description: The weight.
      type: int
      sample: 5
    sessions:
      description: ActiveConn, plus InActConn and PersistConn if counted.
      type: int
      sample: 2
    health:
      description: Always V(unknown); IPVS has no health view.
      type: str
      sample: unknown
    forwarding:
      description: V(route), V(masq), V(tunnel) (or V(local)).
      type: str
      sample: masq
    upper_threshold:
      description: The upper connection threshold (0 = none).
      type: int
      sample: 0
    lower_threshold:
      description: The lower connection threshold (0 = none).
      type: int
      sample: 0
    tunnel_type:
      description: V(ipip), V(gue) or V(gre) for tunnel destinations, else null.
      type: str
      sample: null
    tunnel_port:
      description: The GUE port, else null.
      type: int
      sample: null
    tunnel_checksum:
      description: V(nocsum), V(csum) or V(remcsum) for GUE and GRE tunnels, else null.
      type: str
      sample: null
    active_connections:
      description: ActiveConn.
      type: int
      sample: 2
    inactive_connections:
      description: InActConn.
      type: int
      sample: 0
    persistent_connections:
      description: PersistConn (persistence templates).
      type: int
      sample: 0
    scheduler:
      description: The virtual service's scheduler.
      type: str
      sample: wlc
    stats:
      description: C(conns), C(inpkts), C(outpkts), C(inbytes), C(outbytes).
      returned: when O(stats=true)
      type: dict
    rates:
      description: C(cps), C(inpps), C(outpps), C(inbps), C(outbps).
      returned: when O(rates=true)
      type: dict
services:
  description: The virtual services in scope.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The canonical name, as used in O(virtual_service) and C(members[].container).
      type: str
      sample: tcp:10.0.0.100:80
    protocol:
      description: V(tcp), V(udp), V(sctp) or V(fwmark).
      type: str
      sample: tcp
    address:
      description: The virtual address (null for firewall-mark services).
      type: str
      sample: 10.0.0.100
    port:
      description: The virtual port (null for firewall-mark services).
      type: int
      sample: 80
    fwmark:
      description: The firewall mark, else null.
      type: int
      sample: null
    family:
      description: V(ipv4) or V(ipv6).
      type: str
      sample: ipv4
    scheduler:
      description: The scheduler.
      type: str
      sample: wlc
    persistent:
      description: The persistence timeout in seconds, or null.
      type: int
      sample: 300
    mask:
      description: The persistence netmask (IPv4) or prefix length (IPv6), as ipvsadm prints it, or null.
      type: str
      sample: 255.255.255.0
    ops:
      description: One-packet scheduling.
      type: bool
      sample: false
    pe:
      description: The persistence engine (V(sip)), or null.
      type: str
      sample: null
    scheduler_flags:
      description: The scheduler flags (C(-b)), such as V(sh-fallback).
      type: list
      elements: str
      sample: []
    members:
      description: The number of destinations.
      type: int
      sample: 3
    stats:
      description: The service's traffic counters.
      returned: when O(stats=true)
      type: dict
    rates:
      description: The service's rates.
      returned: when O(rates=true)
      type: dict
error_type:
  description: On failure, the class of the error, for example V(NotFoundError), V(UnreachableError),
    V(PermissionDeniedError), V(InvalidInputError), V(CommandError). Match on this, not on RV(msg).
  returned: failure
  type: str
  sample: NotFoundError
msg:
  description: One line saying what was read.
  returned: always
  type: str
  sample: 3 real server(s) in virtual service tcp:10.0.0.100:80
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentle.lb.plugins.module_utils import ipvs, member, specs

ARGS = dict(
    virtual_service=dict(type="list", elements="str"),
    address=dict(type="list", elements="str"),
    port=dict(type="int"),
    count_inactive=dict(type="bool", default=False),
    count_persistent=dict(type="bool", default=False),
    stats=dict(type="bool", default=False),
    rates=dict(type="bool", default=False),
    timeout=dict(type="float", default=ipvs.DEFAULT_TIMEOUT),
)


def main():
    module = AnsibleModule(argument_spec=specs.argument_spec(ARGS), supports_check_mode=True)
    params = module.params
    try:
        selectors = ipvs.selectors(params["address"], params["port"])
        backend = ipvs.IPVSBackend(ipvs.Ipvsadm(ipvs.spawn_runner, timeout=params["timeout"]),
                                   count_inactive=params["count_inactive"],
                                   count_persistent=params["count_persistent"],
                                   stats=params["stats"], rates=params["rates"], read_persistent=True)
        result = member.describe(backend, ipvs.service_names(params["virtual_service"]), selectors)
    except member.LBError as error:
        specs.fail_with(module, error)
    specs.exit_with(module, result)


if __name__ == "__main__":
    main()
