# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors GUARD_ARGS in plugins/module_utils/specs.py.
    DOCUMENTATION = r"""
options:
  min_active:
    description:
      - The capacity guard. Before O(state=drained) or O(state=absent) takes a member out of
        rotation, count the other members of the same container that are in rotation and healthy.
        If fewer than O(min_active) would remain, fail before anything is written, with a message
        naming O(min_active) and the count.
      - An integer, or a percentage of the container's members such as V(50%), rounded up.
      - Containers in which the member is already out of rotation are not checked, so rerunning a
        drain never fails on capacity that was already gone.
      - All the members named in one call are counted together, so draining a batch in one call
        never takes out more than the floor allows.
      - "The guard holds under concurrency: runs on the same host take turns through a lock file
        (in E(GENTLE_LB_LOCK_DIR), else the temporary directory), and every run re-reads the container
        after writing; if runs elsewhere (other controllers, other AWX jobs) crossed the floor at the same
        moment, it undoes its own change and tries again after a random pause, so the floor is crossed only
        for the few milliseconds that repair takes and at least one of the runs succeeds. A refusal fails with
        C(error_type=GuardRefusedError) and RV(guard) says how many members could leave now."
      - V(0) turns the guard off.
    type: raw
    default: 1
"""
