# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors WAIT_ARGS in plugins/module_utils/specs.py.
    DOCUMENTATION = r"""
options:
  wait:
    description:
      - Block until the goal of O(state) is reached.
      - For V(drained) and V(absent), until the current sessions of every member in scope are at
        or below O(drain_threshold). For V(present), until the load balancer reports every member
        in scope usable (health check passing, or no health check configured).
      - Every member in scope is waited on, whether this call changed it or not, and all together,
        so a member in four containers waits as long as the slowest container, not the sum.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait at most. On timeout the members stay as written (a drained member stays
        drained) and O(on_timeout) decides what happens.
    type: float
    default: 300
  drain_threshold:
    description:
      - A member counts as drained when its current sessions are at or below this number.
    type: int
    default: 0
  poll_interval:
    description:
      - The longest pause between two polls, in seconds. Polling starts at 0.05 s and backs off to
        this cap, so a reached goal is noticed within a fraction of a second even after a long wait.
    type: float
    default: 0.5
  on_timeout:
    description:
      - What to do when O(wait_timeout) passes before the goal is reached.
      - V(fail) fails the task and reports what is still open; the members stay as written.
      - V(continue) returns successfully with a warning naming what is still open.
      - V(force) ends the remaining sessions the load balancer's own way (documented per module),
        then succeeds. For O(state=present) it behaves like V(fail).
    type: str
    choices: [fail, continue, force]
    default: fail
"""
