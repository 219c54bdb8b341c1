# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Standard attributes of every gentle.lb module that changes a member.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - The plan is computed from the live state of the load balancer; nothing is written and
        nothing is waited on. Unknown members and capacity-guard refusals are reported in check mode too.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The diff shows the administrative state and weight of every member in scope, before and after.
"""

    INFO_MODULE = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - This module never changes anything.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: N/A
    details:
      - This module never changes anything.
"""

    HAPROXY = r"""
attributes:
  action_group:
    description: Use C(group/gentle.lb.lb) or C(group/gentle.lb.haproxy) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - gentle.lb.lb
      - gentle.lb.haproxy
"""

    IPVS = r"""
attributes:
  action_group:
    description: Use C(group/gentle.lb.lb) or C(group/gentle.lb.ipvs) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - gentle.lb.lb
      - gentle.lb.ipvs
"""

    F5 = r"""
attributes:
  action_group:
    description: Use C(group/gentle.lb.lb) or C(group/gentle.lb.f5) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - gentle.lb.lb
      - gentle.lb.f5
"""

    HEALTH_FILE = r"""
attributes:
  action_group:
    description: Use C(group/gentle.lb.lb) or C(group/gentle.lb.health_file) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - gentle.lb.lb
      - gentle.lb.health_file
"""

    KEEPALIVED = r"""
attributes:
  action_group:
    description: Use C(group/gentle.lb.lb) or C(group/gentle.lb.keepalived) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - gentle.lb.lb
      - gentle.lb.keepalived
"""

    # gentle.lb.member runs another module: the defaults of that module's groups apply too.
    LB = r"""
attributes:
  action_group:
    description: Use C(group/gentle.lb.lb) in C(module_defaults) to set defaults for this action; the defaults of
      the module it runs (and of that module's groups) apply as well.
    support: full
    membership:
      - gentle.lb.lb
"""
