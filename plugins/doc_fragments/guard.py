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
      - V(0) turns the guard off.
    type: raw
    default: 1
"""
