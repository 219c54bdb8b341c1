#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: haproxy_member_info
short_description: Report the servers of HAProxy backends, with their administrative state
version_added: 0.1.0
author:
  - gentle.lb developers (@gentle-lb)
description:
  - Returns every server of one, several or all HAProxy backends, in the same shape as
    M(gentle.lb.haproxy_member) returns them, without changing anything.
  - The administrative state comes from C(show servers state) (its bitmask), the counters and the
    health view from C(show stat).
  - A socket at C(level operator) is enough.
  - Also reports whether a reload keeps runtime states (RV(server_state)), from HAProxy's configuration.
options:
  backend:
    description:
      - The backend(s) to report. Omitted, every backend (and C(listen) section) with servers.
    type: list
    elements: str
  server:
    description:
      - Report only the server(s) of these names.
    type: list
    elements: str
  address:
    description:
      - Report only servers at these configured addresses (V(192.0.2.10) or V(192.0.2.10:8080)).
      - Not available through O(stats_url).
    type: list
    elements: str
extends_documentation_fragment:
  - gentle.lb.haproxy_connection
  - gentle.lb.action_group.INFO_MODULE
  - gentle.lb.action_group.HAPROXY
notes:
  - RV(members[].state) is V(present) (READY), V(drained) (any DRAIN bit, C(0x18)) or V(absent)
    (any MAINT bit, C(0x23)). C(CMAINT) (C(0x04), C(disabled) in the configuration) alone is not
    maintenance, because HAProxy keeps that bit after the server was made ready.
  - Through O(stats_url) the state is read from the C(status) column, so a drained server whose check
    fails reads as present (C(DOWN)); addresses, the bitmask and the initial weight are not available there.
seealso:
  - module: gentle.lb.haproxy_member
"""

EXAMPLES = r"""
# Ad hoc:
#   ansible lb1 -m gentle.lb.haproxy_member_info -a "backend=app"

- name: Every server of every backend
  gentle.lb.haproxy_member_info:
    socket: /run/haproxy/admin.sock
  register: servers

- name: Where is web3 drained?
  ansible.builtin.debug:
    msg: "{{ servers.members | selectattr('name', 'equalto', 'web3') | selectattr('state', 'equalto', 'drained')
             | map(attribute='container') | list }}"

- name: Warn before a rollout when a reload would undo the drains
  gentle.lb.haproxy_member_info:
    backend: app
  register: lb
- name: Reloads keep runtime states?
  ansible.builtin.assert:
    that: lb.server_state.kept_on_reload
    fail_msg: "A reload of this HAProxy puts drained servers back: {{ lb.server_state.reason }}"
    quiet: true
  ignore_errors: true

- name: Through the stats page
  gentle.lb.haproxy_member_info:
    stats_url: http://lb1:8404/stats
    stats_user: admin
    stats_password: "{{ vault_haproxy_stats_password }}"
    backend: app
"""

RETURN = r"""
members:
  description: One entry per server and backend.
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
    state:
      description: V(present) (READY), V(drained) (DRAIN) or V(absent) (MAINT).
      type: str
      sample: drained
    weight:
      description: The current weight (C(srv_uweight)).
      type: int
      sample: 100
    sessions:
      description: Current sessions plus queued requests.
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
          V(going_up) (C(DOWN 1/2)), V(going_down) (C(UP 1/2)), V(nolb).
      type: str
      sample: up
    status:
      description: The C(status) column of C(show stat), for example C(UP), C(DRAIN), C(MAINT), C(no check).
      type: str
      sample: DRAIN
    admin_state:
      description: The C(srv_admin_state) bitmask (null through the stats page).
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
      description: Whether this is a backup server.
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
    check_rise:
      description: The health check's C(rise) (null without a check).
      type: int
      sample: 2
    check_fall:
      description: The health check's C(fall) (null without a check).
      type: int
      sample: 3
    agent_check:
      description: Whether the server has an agent check (C(agent-check)).
      type: bool
      sample: false
    agent_enabled:
      description: Whether its agent check is enabled (null through the stats page).
      type: bool
      sample: null
    agent_status:
      description: The agent's last result, null without an agent.
      type: str
      sample: null
    total_sessions:
      description:
        - Sessions the server has had (C(stot) of C(show stat)), in the current worker since it started (or
          since C(clear counters)); in HTTP mode, one per request sent to it. This and the traffic counters
          below (but RV(members[].response_time_ms)) are cumulative and per worker - compare two readings of
          the same worker; a reload starts them again from 0.
      type: int
      sample: 1200
    balanced_sessions:
      description: Those of RV(members[].total_sessions) the load-balancing algorithm chose (C(lbtot)); the others
        came through persistence (a cookie, a stick table) or a C(use-server) rule.
      type: int
      sample: 1180
    requests:
      description: HTTP requests the server received (C(req_tot)); null for a TCP-mode backend.
      type: int
      sample: 1200
    responses:
      description:
        - HTTP responses the server sent, per status class (C(hrsp_1xx) ... C(hrsp_5xx), C(hrsp_other)), with
          the keys V(1xx), V(2xx), V(3xx), V(4xx), V(5xx) and V(other); null for a TCP-mode backend. An
          error HAProxy produced itself (a 503 after the connection was refused) is not among them (see
          RV(members[].connection_errors)).
      type: dict
      sample: {"1xx": 0, "2xx": 1188, "3xx": 0, "4xx": 2, "5xx": 10, "other": 0}
    connection_errors:
      description: Failed attempts to connect to the server (C(econ)), retries included.
      type: int
      sample: 0
    response_errors:
      description: Responses from the server that did not complete - aborted, invalid or timed out
        (C(eresp)). A complete 5xx response is counted in RV(members[].responses), not here.
      type: int
      sample: 0
    retries:
      description: Connection attempts to the server that were retried (C(wretr), see C(retries) in HAProxy).
      type: int
      sample: 0
    redispatches:
      description: Requests for the server that were sent to another one after its connection failed
        (C(wredis), with C(option redispatch)).
      type: int
      sample: 0
    response_time_ms:
      description: The server's average response time in milliseconds over its last 1024 requests (C(rtime));
        not cumulative.
      type: int
      sample: 12
    workers:
      description: With O(master_socket), the server's sessions (plus queue) per live HAProxy process, the
        current worker first, then old workers still finishing connections after a reload.
      returned: when master_socket is set
      type: list
      elements: dict
      sample: [{"pid": 4242, "role": "current", "sessions": 0}, {"pid": 4100, "role": "old", "sessions": 1}]
server_state:
  description:
    - Whether a reload of this HAProxy keeps the servers' runtime states (drains, maintenance, weights, disabled
      agents), from its configuration (O(config)). It does when every backend in scope loads a state file
      (C(load-server-state-from-file global) with a C(server-state-file) in global, or C(local)) - and that file
      must then hold the latest state when the reload comes (O(gentle.lb.haproxy_member#module:save_state)).
  returned: always
  type: dict
  contains:
    config:
      description: The configuration files read (or, if they could not be read, the paths tried).
      type: list
      elements: str
      sample: [/etc/haproxy/haproxy.cfg]
    file:
      description: The global C(server-state-file), resolved against C(server-state-base); null if none.
      type: str
      sample: /var/lib/haproxy/server-state
    load:
      description: Per backend in scope, the file it loads its servers' states from on a reload, or null.
      type: dict
      sample: {"app": "/var/lib/haproxy/server-state", "api": null}
    kept_on_reload:
      description: V(true) if every backend in scope loads a state file, V(false) if one does not, null if the
        configuration could not be read (for example a TCP socket of another host).
      type: bool
      sample: true
    reason:
      description: Why V(kept_on_reload) is not V(true), in a few words; null when it is.
      type: str
      sample: "backend api has no load-server-state-from-file"
msg:
  description: How many servers were found where.
  returned: always
  type: str
  sample: "5 server(s) in backend app"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentle.lb.plugins.module_utils import haproxy, member, specs


def main():
    module = AnsibleModule(
        argument_spec=specs.argument_spec(
            dict(backend=dict(type="list", elements="str"), server=dict(type="list", elements="str"),
                 address=dict(type="list", elements="str")),
            specs.HAPROXY_CONNECTION_ARGS),
        supports_check_mode=True,
        **specs.HAPROXY_CONNECTION_RULES)
    params = module.params
    try:
        selectors = haproxy.selectors_from(params["server"], params["address"])
        backend = haproxy.backend_from(specs.haproxy_connection(params))
        backend.validate_scope(params["backend"], selectors)
        result = member.describe(backend, params["backend"], selectors)
    except member.LBError as error:
        specs.fail_with(module, error)
    specs.exit_with(module, result)


if __name__ == "__main__":
    main()
