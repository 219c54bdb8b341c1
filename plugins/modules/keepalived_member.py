#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: keepalived_member
short_description: Drain a real server through keepalived's maintenance files and the IPVS table
version_added: 0.2.0
author:
  - gentle.lb developers (@gentle-lb)
description:
  - For an LVS director run by keepalived with a maintenance C(MISC_CHECK) on its real servers, as
    C(gentle.lb.lvs_director) renders it - a real server is drained while a file named after it exists in
    O(maintenance_dir). keepalived holds the drain itself, so no health check and no reload undoes it (a weight
    written with M(gentle.lb.ipvs_member) would be overwritten by keepalived).
  - V(drained) creates the maintenance file of each real server, V(present) removes it.
  - The director's IPVS table is read the way M(gentle.lb.ipvs_member) reads it (weight 0 is out of rotation),
    so the same capacity guard, waiting and re-assertion apply - the file is written only once keepalived has
    quiesced the real server (weight 0) in every virtual service in scope, the drain is done once its
    connections are gone, the restore once keepalived's checks passed and its weight is back.
  - Runs on the director. For a VRRP pair, run it on each director (both run the same checks and keep their
    own table).
  - Several real servers in one call are planned, guarded, written and waited on together.
options:
  address:
    description:
      - The real server(s), by the address IPVS lists them under.
    type: list
    elements: str
    required: true
  name:
    description:
      - The name of each maintenance file, paired with O(address) - the real server's name in
        C(lvs_director_real_servers), its address, or V(ADDRESS:PORT) (that port only), as the check looks for
        all three. Default the address (V(ADDRESS:PORT) when O(port) is given).
    type: list
    elements: str
  port:
    description:
      - The real servers' port; omitted, every port the address is listed with.
    type: int
  virtual_service:
    description:
      - The virtual service(s) in scope, as in M(gentle.lb.ipvs_member); omitted, every service that lists the
        real server. Leave out services whose real servers have no maintenance check - a drain cannot quiesce
        them there.
    type: list
    elements: str
  state:
    description:
      - V(present) - no maintenance file; waits until keepalived has the real server back (weight above 0).
      - V(drained) - the maintenance file exists; waits until its connections are at or below O(drain_threshold).
    type: str
    choices: [present, drained]
    default: present
  maintenance_dir:
    description: The directory the maintenance check looks in (C(lvs_director_maintenance_dir)).
    type: path
    default: /var/lib/gentle-lb/lvs-maintenance
  quiesce_timeout:
    description:
      - Seconds keepalived gets to set the weight to 0 after the file is created (the maintenance check's
        C(delay_loop) plus its retry). If it does not (no maintenance check for this real server?), the file is
        removed again and the task fails with C(error_type=NoticeTimeoutError).
    type: float
    default: 30
  count_inactive:
    description: Also count C(InActConn) as open connections while waiting for a drain.
    type: bool
    default: false
extends_documentation_fragment:
  - gentle.lb.waiting
  - gentle.lb.guard
  - gentle.lb.action_group
  - gentle.lb.action_group.KEEPALIVED
seealso:
  - module: gentle.lb.ipvs_member
  - module: gentle.lb.ipvs_member_info
  - module: gentle.lb.health_file_member
"""

EXAMPLES = r"""
- name: Drain web2 through keepalived on both directors of the VRRP pair
  gentle.lb.keepalived_member:
    address: 10.1.0.12
    name: web2
    state: drained
    wait_timeout: 120
  delegate_to: "{{ item }}"
  loop: [director1, director2]
  become: true

- name: Put it back and wait until keepalived has it in rotation again
  gentle.lb.keepalived_member:
    address: 10.1.0.12
    name: web2
    state: present
  delegate_to: director1
  become: true
"""

RETURN = r"""
members:
  description: One entry per real server and virtual service, after the change, as M(gentle.lb.ipvs_member) returns
    them, plus the maintenance file.
  returned: always
  type: list
  elements: dict
  contains:
    container:
      description: The virtual service.
      type: str
      sample: tcp:10.0.0.100:80
    name:
      description: The destination as C(ADDRESS:PORT).
      type: str
      sample: 10.1.0.12:80
    state:
      description: V(drained) while the maintenance file (or another name of it) exists, else V(present).
      type: str
      sample: drained
    state_before:
      description: The state before this task.
      type: str
      sample: present
    weight:
      description: The weight keepalived set (null while it is 0).
      type: int
      sample: null
    sessions:
      description: ActiveConn (plus InActConn with O(count_inactive)).
      type: int
      sample: 0
    health:
      description: V(up) while the weight is above 0, else V(down) (keepalived quiesces failed real servers).
      type: str
      sample: down
    maintenance_file:
      description: The file this task writes.
      type: str
      sample: /var/lib/gentle-lb/lvs-maintenance/web2
    maintenance_file_present:
      description: Whether it exists.
      type: bool
      sample: true
waited:
  description: Seconds spent waiting for the goal.
  returned: always
  type: float
  sample: 3.1
reasserted:
  description: How many times a maintenance file somebody else removed during the wait was written again.
  returned: always
  type: int
  sample: 0
guard:
  description: On a capacity-guard refusal (C(error_type=GuardRefusedError)), per virtual service how many real
    servers could leave now (C(may_leave)).
  returned: on a guard refusal
  type: list
  elements: dict
error_type:
  description: The error's class on failure (C(GuardRefusedError), C(WaitTimeoutError), C(NoticeTimeoutError), ...).
  returned: on failure
  type: str
  sample: WaitTimeoutError
msg:
  description: One line saying what was done.
  returned: always
  type: str
diff:
  description: State of every real server in scope, before and after.
  returned: when diff mode is on
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentle.lb.plugins.module_utils import filedrain, ipvs, member, specs

ARGS = dict(
    address=dict(type="list", elements="str", required=True),
    name=dict(type="list", elements="str"),
    port=dict(type="int"),
    virtual_service=dict(type="list", elements="str"),
    state=dict(type="str", default="present", choices=["present", "drained"]),
    maintenance_dir=dict(type="path", default="/var/lib/gentle-lb/lvs-maintenance"),
    quiesce_timeout=dict(type="float", default=30.0),
    count_inactive=dict(type="bool", default=False),
)


def file_name(text):
    """A maintenance file name: one path component, no way out of the directory."""
    if not text or "/" in text or text in (".", "..") or "\0" in text:
        raise member.InvalidInputError("name %r: not a file name for the maintenance directory; give the real "
                                       "server's name, address or address:port" % (text,))
    return text


def build(params):
    addresses = params["address"]
    names = params["name"]
    if names is not None and len(names) != len(addresses):
        raise member.InvalidInputError("name: %d values for %d addresses; give one per address, in the same order"
                                       % (len(names), len(addresses)))
    port = params["port"]
    directory = params["maintenance_dir"]
    targets = []
    for index, address in enumerate(addresses):
        selector = ipvs.selector(address, port)
        plain = selector.address
        own = file_name(names[index] if names else (ipvs.endpoint(plain, port) if port else plain))
        aliases = [plain] + ([ipvs.endpoint(plain, port)] if port else [])
        switch = filedrain.MaintenanceSwitch(os.path.join(directory, own),
                                             [os.path.join(directory, a) for a in aliases])
        targets.append(filedrain.Target(selector, switch))
    # keepalived owns the table: never read it as "managed by another tool".
    view = ipvs.IPVSBackend(ipvs.Ipvsadm(ipvs.spawn_runner), count_inactive=params["count_inactive"],
                            check_managers=False)
    backend = filedrain.KeepalivedBackend(view, targets, notice_timeout=params["quiesce_timeout"])
    request = specs.request_from_params(params, [t.selector for t in targets],
                                        ipvs.service_names(params["virtual_service"]))
    return backend, request


def main():
    module = AnsibleModule(argument_spec=specs.argument_spec(ARGS, specs.WAIT_ARGS, specs.GUARD_ARGS),
                           supports_check_mode=True)
    try:
        backend, request = build(module.params)
        result = member.run(backend, request, check_mode=module.check_mode)
    except member.LBError as error:
        specs.fail_with(module, error)
    specs.exit_with(module, result)


if __name__ == "__main__":
    main()
