#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ipvs_member
short_description: Drain, restore, add or remove an LVS/IPVS real server gently
version_added: 0.1.0
author:
  - gentle.lb developers (@gentle-lb)
description:
  - Takes a real server (an IPVS destination) out of rotation and back in on an LVS director, in
    every virtual service that has it (TCP, UDP, SCTP and firewall-mark services, IPv4 and IPv6),
    or in the virtual services named in O(virtual_service).
  - V(drained) sets the weight to 0 (quiescent), so no new connection is scheduled to the real
    server while established ones go on, and waits until its connections are at or below
    O(drain_threshold).
  - V(present) puts the weight back. Without O(weight), the weight the real server had before
    it was drained is used; it is remembered in a small JSON file on the director (O(state_file)).
    A missing destination is added to the virtual services named in O(virtual_service).
  - V(absent) deletes the destination, after draining it and waiting for its connections when
    O(wait) is true.
  - Runs on the director and drives C(ipvsadm) from E(PATH). Every C(ipvsadm -e) restates the
    destination's forwarding method, thresholds and tunnel options as read just before, because
    C(ipvsadm -e) resets every option it is not given.
notes:
  - "State mapping: V(present) = the destination exists with weight O(weight), else the weight
    remembered before the drain, else 1. V(drained) = the destination exists with weight 0
    (C(ipvsadm -e ... -w 0)). V(absent) = the destination is deleted (C(ipvsadm -d)). A
    destination with weight 0 is reported as V(drained), whoever set it."
  - The sessions waited on are the destination's C(ActiveConn). With O(count_inactive), C(InActConn)
    is added (TCP connections in TIME_WAIT and other non-established states keep it above 0 for
    about two minutes after they close). With O(count_persistent), C(PersistConn), the persistence
    templates pointing at the real server, is added.
  - "O(on_timeout=force) is accepted only with O(state=absent): the destination is deleted even though
    connections are still open. What then happens to them is the kernel's choice,
    C(net.ipv4.vs.expire_nodest_conn): 0 (the default) drops their packets until the clients give up,
    1 resets them on their next packet; the warning names the value. IPVS has no way to end the
    connections of a destination it keeps, so O(state=drained) with O(on_timeout=force) is refused
    before anything is done."
  - IPVS has no health view of its own. Every destination with a weight above 0 counts as in
    rotation and healthy for the capacity guard (O(min_active)), and V(present) is reached as soon
    as the weight is set.
  - When C(keepalived) or C(ldirectord) runs on the director, or their configuration defines virtual
    services, the module warns that they may overwrite its runtime changes. It also warns when a
    real server is drained in a C(sh) or C(mh) service without the C(sh-fallback)/C(mh-fallback)
    flag.
  - "Persistent services (C(ipvsadm -p)): a real server at weight 0 still receives the clients whose
    persistence template points at it, unless C(net.ipv4.vs.expire_quiescent_template) is 1. When
    draining in a persistent service while it is 0, the module warns in one line naming the services;
    O(expire_quiescent_template=true) sets it to 1 first."
  - Requires C(ipvsadm) and root (or C(CAP_NET_ADMIN)) on the director; use C(become).
  - See docs/ipvs.md in the collection for the complete behaviour and troubleshooting.
options:
  address:
    description:
      - The real server's IP address, IPv4 or IPv6 (brackets allowed), or a list of them. Host names are
        not accepted, because IPVS lists addresses only.
      - Several real servers in one call are read once, planned together, checked by one capacity guard that
        counts them all (O(min_active)), written, and waited on together.
    type: list
    elements: str
    required: true
  port:
    description:
      - Only the destinations of O(address) on this real-server port.
      - When a destination is added, its port. Defaults to the virtual service's port (0 for a
        firewall-mark service). With O(forwarding=route) or O(forwarding=tunnel) the real server
        always receives the virtual service's port, so another O(port) is refused.
    type: int
  virtual_service:
    description:
      - The virtual services to act in; all that have the real server when omitted.
      - Written C(PROTOCOL:ADDRESS:PORT) with protocol V(tcp), V(udp) or V(sctp) and IPv6 addresses
        in brackets (V(tcp:192.168.100.11:80), V(udp:[2001:db8::1]:53)), or V(fwmark:MARK) for an IPv4
        and V(fwmark6:MARK) for an IPv6 firewall-mark service. The spelling of C(ipvsadm -Ln) is also
        understood (V(TCP 192.168.100.11:80), V(FWM 7), V(FWM 7 IPv6)).
      - Results name virtual services in the first form, lower-case, with IPv6 compressed.
      - A virtual service that does not exist is an error, for every O(state).
    type: list
    elements: str
  state:
    description:
      - V(present) puts the real server in rotation (adding it where O(virtual_service) names a
        service that lacks it), V(drained) sets its weight to 0, V(absent) deletes it.
    type: str
    choices: [present, drained, absent]
    default: present
  weight:
    description:
      - The weight for O(state=present), 1 to 65535.
      - When omitted, a drained real server gets back the weight it had before the drain (from
        O(state_file)), else 1; a real server in rotation keeps its weight.
      - Ignored for V(drained) and V(absent).
    type: int
  forwarding:
    description:
      - The forwarding method of a destination this module adds. Defaults to V(route).
      - V(route) is direct routing (C(-g)), V(tunnel) IP tunnelling (C(-i)), V(masq) NAT (C(-m)).
      - The options of an existing destination are never changed; a different value is reported
        in a warning.
    type: str
    choices: [route, tunnel, masq]
  upper_threshold:
    description:
      - The upper connection threshold (C(-x)) of a destination this module adds; 0 = no limit.
    type: int
  lower_threshold:
    description:
      - The lower connection threshold (C(-y)) of a destination this module adds; at most
        O(upper_threshold).
    type: int
  tunnel_type:
    description:
      - The tunnel type of a destination this module adds with O(forwarding=tunnel). Defaults to V(ipip).
    type: str
    choices: [ipip, gue, gre]
  tunnel_port:
    description:
      - The GUE destination port, required with O(tunnel_type=gue).
    type: int
  tunnel_checksum:
    description:
      - The tunnel checksum mode for V(gue) and V(gre) tunnels (C(--tun-nocsum), C(--tun-csum),
        C(--tun-remcsum); V(remcsum) only for V(gue)).
    type: str
    choices: [nocsum, csum, remcsum]
  count_inactive:
    description:
      - Also count C(InActConn) as open sessions while waiting for a drain.
    type: bool
    default: false
  count_persistent:
    description:
      - Also count persistence templates (C(PersistConn)) as open sessions while waiting for a drain.
    type: bool
    default: false
  expire_quiescent_template:
    description:
      - When this task drains a real server (V(drained), or the drain that starts V(absent)) in a
        persistent virtual service, first set the director's C(net.ipv4.vs.expire_quiescent_template)
        to 1, so that clients whose persistence template points at the drained real server are sent
        to the others at their next connection instead of returning to it.
      - The sysctl applies to every virtual service of the director (its network namespace) and is
        left at 1; a warning says when it was changed. Nothing is written in check mode, and nothing
        at all if it cannot be set (read-only C(/proc/sys)).
      - With V(false) (default) the sysctl is never changed; draining in a persistent service while it
        is 0 gives a warning.
    type: bool
    default: false
  timeout:
    description:
      - Seconds one C(ipvsadm) run may take at most. Past it the process is killed and the task fails
        (C(error_type=UnreachableError)), saying for a write that its effect is unknown.
    type: float
    default: 30
  state_file:
    description:
      - The JSON file on the director that remembers the weight a real server had before it was
        drained, so that V(present) can restore it. Written atomically (temporary file and rename)
        under a lock on C(<state_file>.lock); its directory is created when missing.
      - If not set, the environment variable E(GENTLE_LB_IPVS_STATE_FILE) is used.
    type: path
    default: /var/lib/gentle.lb/ipvs-weights.json
extends_documentation_fragment:
  - gentle.lb.waiting
  - gentle.lb.guard
  - gentle.lb.action_group
  - gentle.lb.action_group.IPVS
seealso:
  - module: gentle.lb.ipvs_member_info
"""

EXAMPLES = r"""
# Ad hoc, on the director:
#   ansible director -b -m gentle.lb.ipvs_member -a "address=192.168.100.78 state=drained"
#   ansible director -b -m gentle.lb.ipvs_member -a "address=192.168.100.78 state=present"

- name: Drain web3 everywhere it is served, waiting for its connections to finish
  gentle.lb.ipvs_member:
    address: 192.168.100.78
    state: drained
    wait_timeout: 600
  become: true

- name: Drain it in one virtual service only, also waiting for TIME_WAIT connections
  gentle.lb.ipvs_member:
    address: 192.168.100.78
    virtual_service: tcp:192.168.100.11:80
    count_inactive: true
    state: drained
  become: true

- name: Put it back with the weight it had before the drain
  gentle.lb.ipvs_member:
    address: 192.168.100.78
    state: present
  become: true

- name: Add a NAT real server on port 8080 to two services, with thresholds
  gentle.lb.ipvs_member:
    address: 192.168.100.79
    port: 8080
    virtual_service:
      - tcp:192.168.100.11:80
      - tcp:[2001:db8::11]:80
    forwarding: masq
    weight: 5
    upper_threshold: 200
    lower_threshold: 150
    state: present
  become: true

- name: Drain it in a persistent (sticky) service, moving its persistent clients and waiting for their templates
  gentle.lb.ipvs_member:
    address: 192.168.100.78
    virtual_service: tcp:192.168.100.11:443
    expire_quiescent_template: true
    count_persistent: true
    state: drained
  become: true

- name: Remove a real server from a firewall-mark service after it drained
  gentle.lb.ipvs_member:
    address: 192.168.100.80
    virtual_service: fwmark:7
    state: absent
  become: true

- name: Rolling work behind an LVS director
  hosts: webservers
  serial: 1
  module_defaults:
    group/gentle.lb.lb:
      wait_timeout: 300
      min_active: 50%
  tasks:
    - name: Drain this host on the director
      gentle.lb.ipvs_member:
        address: "{{ ansible_default_ipv4.address }}"
        state: drained
      delegate_to: director
      become: true

    - name: Deploy
      ansible.builtin.debug:
        msg: deploy here

    - name: Restore it
      gentle.lb.ipvs_member:
        address: "{{ ansible_default_ipv4.address }}"
        state: present
      delegate_to: director
      become: true
"""

RETURN = r"""
members:
  description: One entry per destination in scope (per virtual service), after the change.
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
      description: The real server's port (0 in firewall-mark services unless set).
      type: int
      sample: 80
    state:
      description: V(present) (weight above 0), V(drained) (weight 0) or V(absent) (deleted).
      type: str
      sample: drained
    state_before:
      description: The state before this task.
      type: str
      sample: present
    weight:
      description: The weight after this task (null once deleted).
      type: int
      sample: 0
    weight_before:
      description: The weight before this task (null if the destination was added).
      type: int
      sample: 5
    sessions:
      description: The connections waited on (ActiveConn, plus InActConn and PersistConn if counted).
      type: int
      sample: 0
    health:
      description: Always V(unknown); IPVS has no health view.
      type: str
      sample: unknown
    forwarding:
      description: V(route), V(masq), V(tunnel) (or V(local), as ipvsadm reports a local real server).
      type: str
      sample: route
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
      sample: 0
    inactive_connections:
      description: InActConn.
      type: int
      sample: 3
    persistent_connections:
      description: PersistConn (persistence templates); null unless O(count_persistent=true), which
        costs one more listing of the table (M(gentle.lb.ipvs_member_info) always reads it).
      type: int
      sample: null
    scheduler:
      description: The virtual service's scheduler.
      type: str
      sample: wlc
waited:
  description: Seconds spent waiting for the goal.
  returned: always
  type: float
  sample: 12.35
reasserted:
  description: How many times a real server was put back into the requested state after somebody else
    (keepalived, an operator) changed its weight during the wait (see O(reassert)).
  returned: always
  type: int
  sample: 0
error_type:
  description: On failure, the class of the error, for example V(GuardRefusedError), V(WaitTimeoutError),
    V(StateLostError), V(NotFoundError), V(UnreachableError), V(PermissionDeniedError), V(InvalidInputError),
    V(CommandError). Match on this, not on RV(msg).
  returned: failure
  type: str
  sample: GuardRefusedError
guard:
  description: On a capacity guard refusal, per virtual service holding a selected real server, its number
    of destinations, how many are in rotation (V(active)), how many must stay (V(needed)), which selected
    destinations would leave (V(leaving)) and how many of them may leave now (V(may_leave)).
  returned: when error_type is GuardRefusedError
  type: list
  elements: dict
  sample: [{"container": "tcp:10.0.0.100:80", "members": 3, "active": 3, "needed": 2,
            "leaving": ["172.16.1.2:80", "172.16.2.2:80"], "may_leave": 1}]
msg:
  description: One line saying what was done.
  returned: always
  type: str
  sample: "real server 192.168.100.78 in virtual service tcp:192.168.100.11:80: drained, goal reached after 12.35s"
diff:
  description: State and weight of every destination in scope, before and after.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.gentle.lb.plugins.module_utils import ipvs, member, specs

ARGS = dict(
    address=dict(type="list", elements="str", required=True),
    port=dict(type="int"),
    virtual_service=dict(type="list", elements="str"),
    state=dict(type="str", default="present", choices=["present", "drained", "absent"]),
    weight=dict(type="int"),
    forwarding=dict(type="str", choices=["route", "tunnel", "masq"]),
    upper_threshold=dict(type="int"),
    lower_threshold=dict(type="int"),
    tunnel_type=dict(type="str", choices=["ipip", "gue", "gre"]),
    tunnel_port=dict(type="int"),
    tunnel_checksum=dict(type="str", choices=["nocsum", "csum", "remcsum"]),
    count_inactive=dict(type="bool", default=False),
    count_persistent=dict(type="bool", default=False),
    expire_quiescent_template=dict(type="bool", default=False),
    timeout=dict(type="float", default=ipvs.DEFAULT_TIMEOUT),
    state_file=dict(type="path", default=ipvs.DEFAULT_STATE_FILE,
                    fallback=(env_fallback, ["GENTLE_LB_IPVS_STATE_FILE"])),
)


def main():
    module = AnsibleModule(argument_spec=specs.argument_spec(ARGS, specs.WAIT_ARGS, specs.GUARD_ARGS),
                           supports_check_mode=True)
    params = module.params
    try:
        request = specs.request_from_params(
            params, ipvs.selectors(params["address"], params["port"]),
            ipvs.service_names(params["virtual_service"]), weight=params["weight"],
            options=dict((key, params[key]) for key in ipvs.DEST_OPTION_KEYS))
        backend = ipvs.IPVSBackend(ipvs.Ipvsadm(ipvs.spawn_runner, timeout=params["timeout"]),
                                   memory=ipvs.WeightMemory(params["state_file"]),
                                   count_inactive=params["count_inactive"],
                                   count_persistent=params["count_persistent"],
                                   expire_quiescent_template=params["expire_quiescent_template"])
        result = member.run(backend, request, check_mode=module.check_mode)
    except member.LBError as error:
        specs.fail_with(module, error)
    specs.exit_with(module, result)


if __name__ == "__main__":
    main()
