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
  save_state:
    description:
      - After every change this call makes (drains, restores, re-assertions, the step of
        O(persistence_grace)), write C(show servers state) to the server-state-file(s) HAProxy loads on a
        reload, so that a reload (C(systemctl reload), a master CLI C(reload), C(-sf)) keeps the drain and
        the weights. Written atomically (temporary file, fsync, rename) under a lock on its directory,
        keeping the file's mode and owner.
      - The files are found in O(config) - C(server-state-file) (under C(server-state-base)) for backends
        with C(load-server-state-from-file global), the backend's own file for C(local) - unless
        O(server_state_file) is given. A backend that loads no state file gets a warning; if none of the
        backends in scope does, the call fails before writing anything.
      - HAProxy loads the file at the reload, so anything changed after the last save is undone by it; that is
        why the file is written after every change. M(gentle.lb.haproxy_member_info) tells whether this
        HAProxy is configured to load it (RV(gentle.lb.haproxy_member_info#module:server_state)).
      - Needs O(socket) (the stats page cannot read C(show servers state)) and write access to the file
        (usually V(become=true)).
    type: bool
    default: false
  server_state_file:
    description:
      - The file O(save_state) writes C(show servers state) (every backend) to, instead of the ones found in
        O(config).
    type: path
  persistence_grace:
    description:
      - "The persistence ladder of V(drained): DRAIN keeps accepting persistent clients (a cookie, a stick
        table, C(use-server)), so their sessions may never reach O(drain_threshold). After this many seconds
        of waiting, a server that still holds sessions is put in maintenance (MAINT, C(set server B/S state
        maint)), where HAProxy no longer honours persistence and sends those clients elsewhere; the sessions
        already open go on. The wait goes on until O(wait_timeout), then O(on_timeout) applies."
      - The server is reported as V(drained) (it is out of rotation either way, and the capacity guard counts
        it the same), with C(MAINT) in RV(members[].status) and RV(members[].admin_flags), and
        RV(members[].drain_ended_by) says which step ended its drain. Health checks pause in MAINT;
        V(present) brings it back as from any other state.
      - Not set, persistence is honoured until O(wait_timeout). Only for V(drained).
    type: float
  agent_memory:
    description:
      - The JSON file on the balancer that remembers which agent checks (C(agent-check)) this module disabled.
      - An agent answering C(ready) cancels a DRAIN or MAINT set from the runtime API within one
        C(agent-inter), and an agent's weight (C(up 100%)) overrides C(set weight). So V(drained) and
        V(absent) first disable the agent of a server whose agent is enabled (C(disable agent B/S)) and
        remember it here; V(present) enables exactly the agents remembered (C(enable agent B/S)) after the
        server is READY, and leaves alone, with a warning, an agent that was disabled by someone else.
      - Written (atomically, under a lock on its directory, which is created when missing) only when a server
        in scope has an agent check.
      - If not set, the environment variable E(GENTLE_LB_HAPROXY_AGENT_MEMORY) is used.
    type: path
    default: /var/lib/gentle.lb/haproxy-agents.json
extends_documentation_fragment:
  - gentle.lb.haproxy_connection
  - gentle.lb.waiting
  - gentle.lb.guard
  - gentle.lb.action_group
  - gentle.lb.action_group.HAPROXY
notes:
  - Runtime changes are lost when HAProxy reloads, unless C(server-state-file) and
    C(load-server-state-from-file) are configured and the file holds the latest state (O(save_state)). A
    drain undone by a reload during the wait is put back (see O(reassert)) with a warning that says HAProxy
    was reloaded.
  - "A reload leaves the old process (or old worker) serving the connections it had. Without O(master_socket)
    they are not visible, and a reload seen during the wait is reported in a warning. With C(-sf) reloads
    (no master) they cannot be reached at all."
  - "V(present) is a health gate: leaving maintenance, HAProxy marks a checked server C(UP) at once with its
    check health at C(rise) (C(UP 1/3) with C(fall 3)), and only a passing check raises it to C(UP); the wait
    ends at C(UP). With C(fall 1) both read C(UP), so the module says so in a warning instead of pretending
    a check passed. From DRAIN, checks never stopped, so C(UP) is the latest check's word."
  - Servers whose sessions arrive through persistence are counted in RV(members[].persistent_arrivals)
    (C(stot) grew, C(lbtot) did not, since a drained server is never chosen by the algorithm); a drain that ends
    with such arrivals still coming gets a warning naming O(persistence_grace).
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

- name: Drain on a production balancer (master-worker, state file, sticky sessions)
  gentle.lb.haproxy_member:
    socket: /run/haproxy/admin.sock
    master_socket: /run/haproxy-master.sock   # counts what old workers still serve after a reload
    save_state: true                          # a reload during the rollout keeps the drain
    backend: app
    server: web3
    state: drained
    persistence_grace: 120                    # then MAINT: cookies and stick tables stop pinning clients
    wait_timeout: 600
  become: true

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
    check_rise:
      description: The health check's C(rise) (null without a check).
      type: int
      sample: 2
    check_fall:
      description: The health check's C(fall) (null without a check); with V(1), V(present) cannot tell a
        passing check after maintenance (see the notes).
      type: int
      sample: 3
    agent_check:
      description: Whether the server has an agent check (C(agent-check)).
      type: bool
      sample: false
    agent_enabled:
      description: Whether its agent check is enabled (null through the stats page, which does not show it).
      type: bool
      sample: null
    agent_status:
      description: The agent's last result (C(L7OK), C(L4CON), ...), null without an agent.
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
      description:
        - With O(master_socket), the server's sessions (plus queue) per live HAProxy process, the current
          worker first, then old workers still finishing connections after a reload. RV(members[].sessions)
          is their sum.
      returned: when master_socket is set
      type: list
      elements: dict
      sample: [{"pid": 4242, "role": "current", "sessions": 0}, {"pid": 4100, "role": "old", "sessions": 1}]
    persistent_arrivals:
      description:
        - For V(drained) and V(absent) once waiting began, the sessions that reached the server since this call
          first read it without the load-balancing algorithm choosing it (C(stot) grew, C(lbtot) did not).
          Each came through persistence (a cookie, a stick table) or a C(use-server) rule. Counted in the
          current worker, across its restarts (a reload restarts the counters).
      returned: when state is drained or absent and wait is true
      type: int
      sample: 0
    drain_ended_by:
      description:
        - For V(drained) and V(absent) once waiting began, the step at which the server's sessions reached
          O(drain_threshold) - V(drain) (in DRAIN), V(maintenance) (in MAINT, from V(absent) or after
          O(persistence_grace)), V(force) (O(on_timeout=force)) - or null while they are still open.
      returned: when state is drained or absent and wait is true
      type: str
      sample: drain
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
                 state=dict(type="str", default="present", choices=list(member.STATES)),
                 save_state=dict(type="bool", default=False), server_state_file=dict(type="path"),
                 persistence_grace=dict(type="float"),
                 agent_memory=dict(type="path", default=haproxy.DEFAULT_AGENT_MEMORY,
                                   fallback=(specs.env_fallback, ["GENTLE_LB_HAPROXY_AGENT_MEMORY"]))),
            specs.HAPROXY_CONNECTION_ARGS, specs.WAIT_ARGS, specs.GUARD_ARGS),
        required_one_of=[["server", "address"]],
        supports_check_mode=True,
        **specs.HAPROXY_CONNECTION_RULES)
    params = module.params
    try:
        selectors = haproxy.selectors_from(params["server"], params["address"])
        backend = haproxy.backend_from(specs.haproxy_connection(params), params["save_state"],
                                       params["server_state_file"], params["agent_memory"])
        request = specs.request_from_params(params, selectors, params["backend"], weight=params["weight"],
                                            options=dict(persistence_grace=params["persistence_grace"]))
        result = member.run(backend, request, check_mode=module.check_mode)
    except member.LBError as error:
        specs.fail_with(module, error)
    specs.exit_with(module, result)


if __name__ == "__main__":
    main()
