#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: haproxy_member
short_description: Put an HAProxy server in rotation, drain it, or put it in maintenance
version_added: 0.1.0
author:
  - gentle.lb developers (@gentle-lb)
description:
  - Sets the administrative state of one server in one, several or all HAProxy backends through
    the runtime API (a unix or TCP stats socket at C(level admin)) or the statistics page's admin
    form, then waits until the goal is reached (sessions drained, or the server usable again).
  - The administrative state is read from C(show servers state) (its bitmask), never from the
    C(status) column of C(show stat), which shows a drained server whose check fails as plain C(DOWN).
  - Acts only on a difference; C(changed) comes from the administrative state and the weight only,
    never from session counts.
  - Every backend and server name is checked against HAProxy's name alphabet (letters, digits,
    dot, underscore, colon and hyphen) before anything is sent, so a name can never smuggle a second command.
options:
  backend:
    description:
      - The backend(s) the server belongs to, as named in C(haproxy.cfg) (a C(listen) section counts).
      - Omitted, the server is acted on in every backend that has it, and all of them are waited on
        together. Frontends have no servers and are never touched.
    type: list
    elements: str
  server:
    description:
      - The server name, as on its C(server) line, or a list of names.
      - Several servers in one call are read once, planned together, checked by one capacity guard that
        counts them all (O(min_active)), written, and waited on together - how a rolling deploy drains a
        whole batch at once.
      - At least one of O(server) and O(address) is required. When both are given, both must match; as
        lists, they must have the same length and are paired in order.
    type: list
    elements: str
  address:
    description:
      - Select the server by its configured address instead of (or as well as) its name, as
        V(192.0.2.10) or V(192.0.2.10:8080) (V([2001:db8::1]:8080) for IPv6), or a list of them. Compared
        with the address HAProxy uses and with the FQDN written in C(haproxy.cfg).
      - Not available through O(stats_url), because the stats page does not show addresses.
    type: list
    elements: str
  state:
    description:
      - V(present) - in rotation. Admin state READY (C(set server B/S state ready)), which clears
        both DRAIN and MAINT; O(weight) is set when given. Waits until HAProxy reports the server
        C(UP) after a passing check (or the server has no check).
      - V(drained) - no new sessions; existing ones finish; health checks go on. Admin state DRAIN
        (C(set server B/S state drain)). Waits until the server's current sessions plus its queue are
        at or below O(drain_threshold).
      - V(absent) - out of service. Admin state MAINT (C(set server B/S state maint)), so no traffic,
        health checks paused; sessions already open continue until they end. Waits like V(drained).
        With O(on_timeout=force), what is still open is ended with C(shutdown sessions server B/S), and
        the result says how many sessions HAProxy still shows afterwards.
        Servers are never deleted, so a server HAProxy does not have is an error naming the backends
        searched (a mistyped name is never reported as "already absent").
    type: str
    choices: [present, drained, absent]
    default: present
  weight:
    description:
      - The weight for O(state=present); absolute V(1) to V(256), or a percentage of the server's
        initial (configured) weight such as V(50%).
      - A weight that resolves to 0 (V(0), or V(50%) of an initial weight of 1) is refused, because weight 0 takes
        the server out of rotation, which is O(state=drained)'s job, with the capacity guard.
      - Not given, the weight is kept; a server whose weight is 0 gets its initial weight back, since
        V(present) means in rotation.
      - A percentage is resolved the way HAProxy does (initial weight x percentage / 100, rounded
        down, at most 256) so that a rerun compares like with like.
      - Ignored for V(drained) and V(absent) (HAProxy keeps the weight while draining), so the same
        options can be passed to the drain and the restore call. Still checked for range.
      - Not available through O(stats_url), because the stats page cannot change weights.
    type: raw
extends_documentation_fragment:
  - gentle.lb.haproxy_connection
  - gentle.lb.waiting
  - gentle.lb.guard
  - gentle.lb.action_group
  - gentle.lb.action_group.HAPROXY
notes:
  - Runtime changes are lost when HAProxy reloads, unless C(server-state-file) and
    C(load-server-state-from-file) are configured.
  - O(state=present) on a server that does not exist in a backend named in O(backend), with both O(server)
    and O(address) (as C(IP:PORT)) given, adds it as a dynamic server (C(add server), HAProxy 2.6 and
    later without experimental mode; 3.0 behaves the same). The backend must use a dynamic balance
    algorithm. The server gets C(check) when other servers of the backend have a health check;
    C(default-server) settings are not applied to dynamic servers, so HAProxy's own check defaults are used
    (inter 2s, rise 2, fall 3). A dynamic server disappears on reload. V(absent) puts it in MAINT; it is never deleted.
  - Bits inherited from a tracked server (C(track)) cannot be cleared on the tracking server; the module
    refuses such a change before writing anything and names the tracked server, unless the tracked
    server is changed by the same call.
  - Through O(stats_url) the administrative state is read from the C(status) column, so a drained
    server whose check fails reads as C(DOWN) (present); rerunning a drain on it reports a change.
  - Requires a socket at C(level admin) to change anything (the level is checked before any write);
    C(level operator) is enough for M(gentle.lb.haproxy_member_info).
seealso:
  - module: gentle.lb.haproxy_member_info
  - name: HAProxy management guide (runtime API)
    description: C(set server), C(show servers state) and the admin-state bits.
    link: https://docs.haproxy.org/2.6/management.html
"""

EXAMPLES = r"""
# Ad hoc:
#   ansible lb1 -m gentle.lb.haproxy_member -a "backend=app server=web3 state=drained"
#   ansible lb1 -m gentle.lb.haproxy_member -a "server=web3 state=present"          # every backend
#   ansible lb1 -m gentle.lb.haproxy_member -a "address=10.0.0.13 state=absent on_timeout=force"

- name: Drain web3 in backend app and wait until its sessions are gone
  gentle.lb.haproxy_member:
    backend: app
    server: web3
    state: drained
    wait_timeout: 600

- name: Put it back in every backend that has it, at half its configured weight
  gentle.lb.haproxy_member:
    server: web3
    state: present
    weight: "50%"

- name: Same through the stats page, for a balancer reached over HTTP only
  gentle.lb.haproxy_member:
    stats_url: http://lb1:8404/stats
    stats_user: admin
    stats_password: "{{ vault_haproxy_stats_password }}"
    backend: app
    server: web3
    state: drained

- name: A play whose tasks share the connection settings
  hosts: lb1
  module_defaults:
    group/gentle.lb.lb:
      socket: tcp://127.0.0.1:9999
  tasks:
    - name: Maintenance for the server at 10.0.0.13, ending what is left after 2 minutes
      gentle.lb.haproxy_member:
        address: 10.0.0.13
        state: absent
        wait_timeout: 120
        on_timeout: force

- name: Drain a whole batch in one call (one guard counts them together, one wait)
  gentle.lb.haproxy_member:
    backend: app
    server: [web3, web4, web5]
    state: drained
    min_active: 50%

- name: Add web9 as a dynamic server (HAProxy 2.6+, dynamic balance algorithm)
  gentle.lb.haproxy_member:
    backend: app
    server: web9
    address: 10.0.0.19:8080
    state: present
"""

RETURN = r"""
members:
  description: One entry per server in scope (per backend), as it is after the call.
  returned: always
  type: list
  elements: dict
  contains:
    container:
      description: The backend.
      type: str
      sample: app
    backend:
      description: The backend (same as RV(members[].container)).
      type: str
      sample: app
    name:
      description: The server name.
      type: str
      sample: web3
    address:
      description: The address HAProxy uses for the server (null through the stats page).
      type: str
      sample: 10.0.0.13
    port:
      description: The server port (null through the stats page).
      type: int
      sample: 8080
    state_before:
      description: The state before the call, V(present), V(drained) or V(absent).
      type: str
      sample: present
    state:
      description: The state now (in check mode, the state the call would set).
      type: str
      sample: drained
    weight_before:
      description: The weight (C(srv_uweight)) before the call.
      type: int
      sample: 100
    weight:
      description: The weight now.
      type: int
      sample: 100
    sessions:
      description: Current sessions plus queued requests, the number a drain waits on.
      type: int
      sample: 0
    current_sessions:
      description: Current sessions (C(scur)).
      type: int
      sample: 0
    queued:
      description: Requests queued for this server (C(qcur)).
      type: int
      sample: 0
    health:
      description:
        - HAProxy's health view. V(up) (check passing), V(unknown) (no check), V(down),
          V(going_up) (C(DOWN 1/2)), V(going_down) (C(UP 1/2), also right after leaving maintenance
          until a check passes), V(nolb).
      type: str
      sample: up
    status:
      description: The C(status) column of C(show stat), for example C(UP), C(DRAIN), C(MAINT), C(no check).
      type: str
      sample: DRAIN
    admin_state:
      description: The C(srv_admin_state) bitmask from C(show servers state) (null through the stats page).
      type: int
      sample: 8
    admin_flags:
      description: The names of the bits set in RV(members[].admin_state) (V(FMAINT), V(IMAINT),
        V(CMAINT), V(FDRAIN), V(IDRAIN), V(RMAINT), V(HMAINT)).
      type: list
      elements: str
      sample: [FDRAIN]
    operational_state:
      description: C(srv_op_state) as a word (V(stopped), V(starting), V(running), V(stopping)); null through the stats page.
      type: str
      sample: running
    check_status:
      description: The last health check result (C(L7OK), C(L4CON), ...), null without a check.
      type: str
      sample: L7OK
    health_check:
      description: Whether a health check is configured (or the server tracks another).
      type: bool
      sample: true
    initial_weight:
      description: The configured weight (C(srv_iweight)); null through the stats page.
      type: int
      sample: 100
    backup:
      description: Whether this is a backup server (never counted as in rotation by the capacity guard).
      type: bool
      sample: false
    tracks:
      description: The C(backend/server) this server tracks, if any.
      type: str
      sample: null
    fqdn:
      description: The FQDN from the configuration, if the server was configured by name.
      type: str
      sample: null
waited:
  description: Seconds spent waiting for the goal.
  returned: always
  type: float
  sample: 2.35
reasserted:
  description: How many times a server was put back into the requested state after somebody else changed it
    during the wait (see O(reassert)).
  returned: always
  type: int
  sample: 0
error_type:
  description: On failure, the class of the error, for example V(GuardRefusedError), V(WaitTimeoutError),
    V(StateLostError), V(NotFoundError), V(UnreachableError), V(PermissionDeniedError), V(InvalidInputError).
    Match on this, not on RV(msg).
  returned: failure
  type: str
  sample: GuardRefusedError
guard:
  description: On a capacity guard refusal, per backend holding a selected server, its number of members, how
    many are in rotation and healthy (V(active)), how many must stay (V(needed)), which selected servers would
    leave (V(leaving)) and how many of them may leave now (V(may_leave)).
  returned: when error_type is GuardRefusedError
  type: list
  elements: dict
  sample: [{"container": "app", "members": 4, "active": 4, "needed": 3, "leaving": ["web1", "web2"], "may_leave": 1}]
msg:
  description: One line saying what was done.
  returned: always
  type: str
  sample: "server web3 in backend app: drained, goal reached after 2.35s"
diff:
  description: Administrative state and weight of every server in scope, before and after.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentle.lb.plugins.module_utils import haproxy, member, specs


def main():
    module = AnsibleModule(
        argument_spec=specs.argument_spec(
            dict(backend=dict(type="list", elements="str"), server=dict(type="list", elements="str"),
                 address=dict(type="list", elements="str"), weight=dict(type="raw"),
                 state=dict(type="str", default="present", choices=list(member.STATES))),
            specs.HAPROXY_CONNECTION_ARGS, specs.WAIT_ARGS, specs.GUARD_ARGS),
        required_one_of=[["server", "address"]],
        supports_check_mode=True,
        **specs.HAPROXY_CONNECTION_RULES)
    params = module.params
    try:
        selectors = haproxy.selectors_from(params["server"], params["address"])
        backend = haproxy.HAProxyBackend(haproxy.transport_from(**specs.haproxy_connection(params)))
        request = specs.request_from_params(params, selectors, params["backend"], weight=params["weight"])
        result = member.run(backend, request, check_mode=module.check_mode)
    except member.LBError as error:
        specs.fail_with(module, error)
    specs.exit_with(module, result)


if __name__ == "__main__":
    main()
