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
      - Block until the goal of O(state) is reached. The goal is a state, not a count.
      - For V(drained) and V(absent), until every member in scope is still in the requested
        administrative state (and weight) and its current sessions are at or below O(drain_threshold).
        For V(present), until every member in scope is in rotation and the load balancer reports it
        usable (health check passing, or no health check configured).
      - Every member in scope is waited on, whether this call changed it or not, and all together,
        so a member in four containers (or four members of one batch) waits as long as the slowest,
        not the sum.
      - If somebody else moves a member out of the requested state during the wait (a reload that
        drops runtime state, an operator, an agent check), see O(reassert).
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
      - Not set, the load balancer's own default is used - V(0.2) for HAProxy and IPVS (a local socket
        or a local command), V(0.5) for F5 (its management API).
    type: float
  reassert:
    description:
      - What to do when a member leaves the requested state during the wait because somebody else
        changed it.
      - V(true) puts it back (once each time it is seen changed, through the same capacity guard as the
        first write), warns in one line naming what was seen (for HAProxy, whether the process was
        reloaded), counts it in RV(reasserted), and keeps waiting within the same O(wait_timeout).
      - V(false) fails the task at once (C(error_type=StateLostError)) and leaves the member as the
        other party left it.
      - Either way the result never reports the goal reached for a member that is not in the goal state.
    type: bool
    default: true
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
