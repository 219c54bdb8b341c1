#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: health_file_member
short_description: Drain a server by moving aside the page its balancer's health check probes
version_added: 0.2.0
author:
  - gentle.lb developers (@gentle-lb)
description:
  - For balancers that are told to drain a server by a failing health check rather than a command - an
    HAProxy C(option httpchk) on a static page, a monitor on a file - and for teams that drain that way.
  - V(drained) renames each O(path) to its O(aside) name, so the balancer's check fails and it stops sending
    new sessions; V(present) renames it back.
  - With O(view), the balancer's own view (HAProxy's runtime API or stats page, read only) is read the way
    M(gentle.lb.haproxy_member) reads it, so the same capacity guard, waiting and re-assertion apply - the
    move is done only once HAProxy shows the server down, the drain once its sessions are gone, the
    restore once its check passes again. The module runs where the files are, and must reach the view from
    there (a unix socket on the same host, a C(tcp://) socket or the stats page).
  - Without O(view) nothing but the files can be seen - no capacity guard - and the module waits a computed
    C((fall + 1) x inter) seconds after a drain and C((rise + 1) x inter) after a restore, and says so in a
    warning.
  - Several paths in one call are planned, guarded, moved and waited on together.
options:
  path:
    description:
      - The file(s) the balancer probes, one per server.
    type: list
    elements: path
    required: true
  aside:
    description:
      - Where each O(path) is moved while drained, paired with O(path). Default V(<path>.rolling_deploy).
    type: list
    elements: path
  state:
    description:
      - V(present) - the file is in place (the check passes); waits until the balancer reports the server
        usable.
      - V(drained) - the file is aside; waits until the balancer has the server out of rotation and its
        sessions are at or below O(drain_threshold).
    type: str
    choices: [present, drained]
    default: present
  view:
    description:
      - The balancer's view of the servers, read only. Not set, no view is read (see the description).
    type: dict
    aliases: [info]
    suboptions:
      type:
        description: The balancer. Only HAProxy for now.
        type: str
        choices: [haproxy]
        default: haproxy
      server:
        description: The name of each server in the view, paired with O(path).
        type: list
        elements: str
        required: true
      backend:
        description: The backend(s) the servers are in; omitted, every backend that has them.
        type: list
        elements: str
      socket:
        description: As in M(gentle.lb.haproxy_member); a level C(operator) socket is enough.
        type: str
      stats_url:
        description: As in M(gentle.lb.haproxy_member).
        type: str
      stats_user:
        description: As in M(gentle.lb.haproxy_member).
        type: str
      stats_password:
        description: As in M(gentle.lb.haproxy_member).
        type: str
      validate_certs:
        description: As in M(gentle.lb.haproxy_member).
        type: bool
        default: true
      timeout:
        description: As in M(gentle.lb.haproxy_member).
        type: float
        default: 5
  inter:
    description:
      - Seconds between two checks of the balancer (HAProxy's C(inter)). With O(view) it only bounds how long
        the balancer may take to notice a moved file; without, it sets the computed wait.
    type: float
    default: 2
  fall:
    description: Failed checks before the balancer marks the server down (HAProxy's C(fall)).
    type: int
    default: 3
  rise:
    description: Passing checks before the balancer marks the server up again (HAProxy's C(rise)).
    type: int
    default: 2
notes:
  - The balancer must show a moved file within C((fall + 1) x inter x 2 + 10) seconds; if it does not (its check
    does not probe this file?) the file is put back and the task fails with C(error_type=NoticeTimeoutError).
  - A server that HAProxy itself holds out (DRAIN or MAINT set through its runtime API) is not put back by
    V(present); the task says so.
extends_documentation_fragment:
  - gentle.lb.waiting
  - gentle.lb.guard
  - gentle.lb.action_group
  - gentle.lb.action_group.HEALTH_FILE
seealso:
  - module: gentle.lb.haproxy_member
  - module: gentle.lb.keepalived_member
"""

EXAMPLES = r"""
- name: Drain web3 by moving the page HAProxy probes, watching HAProxy's stats page
  gentle.lb.health_file_member:
    path: /var/www/html/health.html
    state: drained
    view:
      server: web3
      backend: app
      stats_url: http://lb1:8404/stats
      stats_user: ops
      stats_password: "{{ vault_lb1_stats }}"
    inter: 2
    fall: 3

- name: Put it back and wait until HAProxy's check passes
  gentle.lb.health_file_member:
    path: /var/www/html/health.html
    state: present
    view:
      server: web3
      backend: app
      stats_url: http://lb1:8404/stats
      stats_user: ops
      stats_password: "{{ vault_lb1_stats }}"

- name: Without a view (no capacity guard; waits (fall + 1) x inter seconds)
  gentle.lb.health_file_member:
    path: /var/www/html/health.html
    state: drained
    inter: 2
    fall: 3
"""

RETURN = r"""
members:
  description: One entry per server and backend in the view (or per file without a view), after the change.
  returned: always
  type: list
  elements: dict
  contains:
    container:
      description: The backend (V(health_file) without a view).
      type: str
      sample: app
    name:
      description: The server's name (the path without a view).
      type: str
      sample: web3
    state:
      description: V(drained) while the file is aside, else the server's state in HAProxy.
      type: str
      sample: drained
    state_before:
      description: The state before this task.
      type: str
      sample: present
    sessions:
      description: HAProxy's current sessions plus queue (0 without a view).
      type: int
      sample: 0
    health:
      description: HAProxy's health view (V(up), V(down), V(going_up), V(going_down), V(unknown)).
      type: str
      sample: down
    path:
      description: The file the balancer probes.
      type: str
      sample: /var/www/html/health.html
    aside:
      description: Where it is while drained.
      type: str
      sample: /var/www/html/health.html.rolling_deploy
    file_in_place:
      description: Whether the file is at O(path).
      type: bool
      sample: false
waited:
  description: Seconds spent waiting for the goal (the computed wait included, without a view).
  returned: always
  type: float
  sample: 6.2
reasserted:
  description: How many times a file somebody else moved back during the wait was moved again.
  returned: always
  type: int
  sample: 0
guard:
  description: On a capacity-guard refusal (C(error_type=GuardRefusedError)), per backend how many servers
    could leave now (C(may_leave)), as in M(gentle.lb.haproxy_member).
  returned: on a guard refusal
  type: list
  elements: dict
error_type:
  description: The error's class on failure (C(GuardRefusedError), C(WaitTimeoutError), C(NoticeTimeoutError), ...).
  returned: on failure
  type: str
  sample: NoticeTimeoutError
msg:
  description: One line saying what was done.
  returned: always
  type: str
diff:
  description: State of every server in scope, before and after.
  returned: when diff mode is on
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentle.lb.plugins.module_utils import filedrain, haproxy, member, specs

VIEW_ARGS = dict(
    type=dict(type="str", default="haproxy", choices=["haproxy"]),
    server=dict(type="list", elements="str", required=True),
    backend=dict(type="list", elements="str"),
    socket=dict(type="str"),
    stats_url=dict(type="str"),
    stats_user=dict(type="str"),
    stats_password=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="float", default=5.0),
)

ARGS = dict(
    path=dict(type="list", elements="path", required=True),
    aside=dict(type="list", elements="path"),
    state=dict(type="str", default="present", choices=["present", "drained"]),
    view=dict(type="dict", aliases=["info"], options=VIEW_ARGS,
              mutually_exclusive=[["socket", "stats_url"]], required_together=[["stats_user", "stats_password"]]),
    inter=dict(type="float", default=2.0),
    fall=dict(type="int", default=3),
    rise=dict(type="int", default=2),
)


def paired(values, count, what, paths):
    if values is None:
        return [None] * count
    if len(values) != count:
        raise member.InvalidInputError("%s: %d values for %d paths (%s); give one per path, in the same order"
                                       % (what, len(values), count, ", ".join(paths)))
    return values


def build(params):
    """(backend, request, switches) for the module's parameters."""
    paths = params["path"]
    asides = paired(params["aside"], len(paths), "aside", paths)
    switches = [filedrain.AsideSwitch(p, a) for p, a in zip(paths, asides)]
    view_params = params["view"]
    notice = (params["fall"] + 1) * params["inter"] * 2 + 10
    if view_params is None:
        selectors = [member.Selector(name=s.path) for s in switches]
        backend = filedrain.HealthFileBackend(None, [filedrain.Target(sel, sw) for sel, sw in zip(selectors, switches)],
                                              notice_timeout=notice)
        containers = None
    else:
        names = paired(view_params["server"], len(paths), "view.server", paths)
        selectors = [haproxy.selector_from(name, None) for name in names]
        view = haproxy.backend_from(specs.haproxy_connection(view_params))
        backend = filedrain.HealthFileBackend(view, [filedrain.Target(sel, sw) for sel, sw in zip(selectors, switches)],
                                              notice_timeout=notice)
        view.validate_scope(view_params["backend"], selectors)
        containers = view_params["backend"]
    request = specs.request_from_params(params, selectors, containers)
    if view_params is None:
        # Nothing but the files can be read: there is nothing to count.
        request.min_active = member.parse_min_active(0)
    return backend, request, switches


def main():
    module = AnsibleModule(argument_spec=specs.argument_spec(ARGS, specs.WAIT_ARGS, specs.GUARD_ARGS),
                           supports_check_mode=True)
    params = module.params
    started = time.monotonic()
    try:
        backend, request, switches = build(params)
        result = member.run(backend, request, check_mode=module.check_mode)
    except member.LBError as error:
        specs.fail_with(module, error)
    if params["view"] is None:
        module.warn("health_file %s: no balancer view (view), so no capacity guard and no wait on the balancer; "
                    "give view to watch it" % ", ".join(params["path"]))
        if request.wait and not module.check_mode:
            rounds = (params["fall"] if request.state == "drained" else params["rise"]) + 1
            slept = filedrain.computed_wait(switches, rounds * params["inter"])
            module.warn("health_file: waited %.1fs, the computed (%s + 1) x inter = %gs since the file moved"
                        % (slept, "fall" if request.state == "drained" else "rise", rounds * params["inter"]))
            result["waited"] = round(time.monotonic() - started, 3)
    specs.exit_with(module, result)


if __name__ == "__main__":
    main()
