# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The load-balancer-neutral core of gentle.lb.

Every member module works the same way, whatever balancer it speaks to:

1. read the members in scope from the balancer (``backend.read``);
2. ``plan``: pick the targets, decide what must change, refuse unsafe plans
   (zero matches, capacity guard) -- all before anything is written;
3. ``apply``: hand each change to the backend, the only code that writes;
4. ``wait``: poll the balancer until every target reached its goal
   (sessions drained, or the member usable again);
5. return one result shape (``members``, ``waited``, ``msg``, ``changed``, ``diff``).

The core knows states and waiting; it knows nothing about wire protocols and
nothing about Ansible.  A *backend* is any object with this interface::

    kind                  "haproxy", "ipvs", "f5" (used in messages only)
    container_label       "backend", "virtual service", "pool"
    member_label          "server", "real server", "member"
    read(containers)      -> [Member]; containers=None means every container.
                          Raises NotFoundError for a container that does not exist.
    apply(change, request)
                          write one Change; raise LBError subclasses on failure.

and optionally::

    poll(containers)      -> [Member]; a cheaper read used while waiting (default: read)
    validate(request)     raise InvalidInputError before any I/O
    target_weight(member, requested)
                          -> the absolute weight ``present`` must leave (None: keep)
    new_member(container, selector, request)
                          -> a Member record (state "absent") describing a member the
                          backend can create for ``present``, or None if it cannot
    force(members)        end the remaining sessions (``on_timeout: force``); may return a
                          one-line note of what it really did, used in msg/warnings
    check_plan(plan, members, request)
                          refuse a plan the balancer would accept but not carry out
                          (raise LBError); called last in ``plan``, so in check mode too
    removes_member        True if ``absent`` deletes the member so that its sessions can
                          no longer be read: the core then drains, waits, and removes.
    drained_weight        the weight a drained member has on this balancer (IPVS: 0), so
                          that check mode and diffs show it; None (default) keeps the weight.

Python 3.9 compatible: this file runs on the managed node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import time
from copy import copy as shallow_copy


STATES = ("present", "drained", "absent")
ON_TIMEOUT = ("fail", "continue", "force")

# Health as the core understands it.  Backends map their balancer's own view:
# "up" (checks pass), "down" (checks fail), "unknown" (no check configured, or
# the balancer has no health view at all, as with IPVS): "unknown" is usable.
USABLE_HEALTH = ("up", "unknown")


# --------------------------------------------------------------------------
# Errors.  Wire clients translate their failures into these; only a module's
# main() turns them into fail_json.  ``result`` carries whatever is known
# (the members touched so far), so a failure still reports the state it left.
# --------------------------------------------------------------------------

class LBError(Exception):
    """Base of every error gentle.lb reports.  The message is one line:
    ``<object> <name>: <what happened>; <what to do>``."""

    def __init__(self, msg, result=None):
        super(LBError, self).__init__(msg)
        self.msg = msg
        self.result = result or {}


class InvalidInputError(LBError):
    """An option value the balancer would refuse (name alphabet, weight range)."""


class NotFoundError(LBError):
    """Unknown container or member."""


class UnreachableError(LBError):
    """The balancer does not answer (socket missing, connection refused, timeout)."""


class AuthRefusedError(LBError):
    """Credentials were refused."""


class PermissionDeniedError(LBError):
    """Reachable, but not allowed to do this (socket mode, stats level, privilege)."""


class CommandError(LBError):
    """The balancer refused a command; the message quotes its own words."""


class GuardRefusedError(LBError):
    """The capacity guard refused to take a member out of rotation."""


class WaitTimeoutError(LBError):
    """The goal was not reached within wait_timeout; the members stay as written."""


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------

class Member(object):
    """One member in one container, as the balancer reports it.

    ``state`` is the administrative state mapped onto the state model
    (present / drained / absent); ``sessions`` is the number the drain waits on
    (the backend decides what it counts: HAProxy scur+qcur, IPVS ActiveConn, ...).
    ``details`` holds balancer-specific fields for the info modules.
    """

    __slots__ = ("container", "name", "address", "port", "state", "weight",
                 "sessions", "health", "backup", "details")

    def __init__(self, container, name, address=None, port=None, state="present",
                 weight=None, sessions=0, health="unknown", backup=False, details=None):
        self.container = container
        self.name = name
        self.address = address
        self.port = port
        self.state = state
        self.weight = weight
        self.sessions = sessions
        self.health = health
        self.backup = backup
        self.details = details or {}

    @property
    def key(self):
        return (self.container, self.name)

    @property
    def in_rotation(self):
        """Admin-enabled with weight above 0, and not a backup server."""
        return self.state == "present" and not self.backup and (self.weight is None or self.weight > 0)

    @property
    def usable(self):
        return self.health in USABLE_HEALTH

    def as_dict(self):
        entry = dict(container=self.container, name=self.name, address=self.address,
                     port=self.port, state=self.state, weight=self.weight,
                     sessions=self.sessions, health=self.health)
        entry.update(self.details)
        return entry

    def __repr__(self):
        return "Member(%s/%s %s w=%s s=%s %s)" % (self.container, self.name, self.state,
                                                  self.weight, self.sessions, self.health)


class Selector(object):
    """How the user named the member: by name, or by address (and port)."""

    def __init__(self, name=None, address=None, port=None):
        self.name = name
        self.address = address
        self.port = port

    def matches(self, member):
        if self.name is not None and member.name != self.name:
            return False
        if self.address is not None and member.address != self.address:
            return False
        if self.port is not None and member.port != self.port:
            return False
        return True

    def describe(self):
        if self.name is not None:
            return self.name
        if self.port is not None:
            return "%s:%s" % (self.address, self.port)
        return str(self.address)


class Request(object):
    """What the user asked for, in plain values."""

    def __init__(self, state, selector, containers=None, weight=None, min_active=1,
                 wait=True, wait_timeout=300.0, drain_threshold=0, poll_interval=0.5,
                 on_timeout="fail", options=None):
        if state not in STATES:
            raise InvalidInputError("state %s: not one of %s" % (state, ", ".join(STATES)))
        if on_timeout not in ON_TIMEOUT:
            raise InvalidInputError("on_timeout %s: not one of %s" % (on_timeout, ", ".join(ON_TIMEOUT)))
        self.state = state
        self.selector = selector
        self.containers = list(containers) if containers else None
        self.weight = weight
        self.min_active = parse_min_active(min_active)
        self.wait = wait
        self.wait_timeout = float(wait_timeout)
        self.drain_threshold = int(drain_threshold)
        self.poll_interval = float(poll_interval)
        self.on_timeout = on_timeout
        # Backend-specific options (IPVS forwarding, F5 drain_mode, ...), passed through untouched.
        self.options = options or {}


class Change(object):
    """One planned write: ``member`` from its current state to (state, weight)."""

    def __init__(self, member, state, weight, add=False):
        self.member = member
        self.state = state
        self.weight = weight
        self.add = add

    def __repr__(self):
        return "Change(%r -> %s w=%s%s)" % (self.member, self.state, self.weight, " add" if self.add else "")


class Plan(object):
    def __init__(self, targets, changes):
        self.targets = targets      # every member in scope, changed or not
        self.changes = changes      # the writes; empty means changed=False

    def change_for(self, member):
        for change in self.changes:
            if change.member.key == member.key:
                return change
        return None


# --------------------------------------------------------------------------
# min_active
# --------------------------------------------------------------------------

def parse_min_active(value):
    """Return ("count", n) or ("percent", p) from 3, "3" or "50%"."""
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError(text)
            return ("percent", percent)
        count = int(text)
        if count < 0:
            raise ValueError(text)
        return ("count", count)
    except ValueError:
        raise InvalidInputError("min_active %s: not a non-negative integer or a percentage "
                                "like '50%%'; set min_active: 0 to turn the guard off" % (value,))


def required_active(min_active, container_size):
    kind, amount = min_active
    if kind == "count":
        return amount
    # A percentage is of the container's members, rounded up (CodeDeploy's rule).
    return int(math.ceil(container_size * amount / 100.0 - 1e-9))


def describe_min_active(min_active):
    kind, amount = min_active
    return ("%g%%" % amount) if kind == "percent" else str(amount)


# --------------------------------------------------------------------------
# Planning: pure functions of (members, request); nothing is written here.
# --------------------------------------------------------------------------

def plan(backend, members, request):
    """Decide what must change.  Raises NotFoundError and GuardRefusedError
    before anything is written, so check mode reports them too."""
    selector = request.selector
    targets = [m for m in members if selector.matches(m)]
    who = "%s %s" % (backend.member_label, selector.describe())

    added = []
    if request.state != "absent":
        added = _members_to_add(backend, targets, request, who)
        targets.extend(added)
        if not targets:
            where = _scope_text(backend, request.containers)
            raise NotFoundError("%s: not found in %s; check the name or address, or name the "
                                "%s it belongs to" % (who, where, backend.container_label))

    changes = []
    for member in targets:
        change = _change_for(backend, member, request, add=member in added)
        if change is not None:
            changes.append(change)

    if request.state in ("drained", "absent"):
        check_capacity(backend, members, targets, changes, request.min_active)
    the_plan = Plan(targets, changes)
    check_plan = getattr(backend, "check_plan", None)
    if check_plan is not None:
        check_plan(the_plan, members, request)
    return the_plan


def _members_to_add(backend, targets, request, who):
    """``present`` may create a member, but only in a container the user named."""
    if request.state != "present" or not request.containers:
        return []
    new_member = getattr(backend, "new_member", None)
    found_in = set(m.container for m in targets)
    added = []
    for container in request.containers:
        if container in found_in:
            continue
        record = new_member(container, request.selector, request) if new_member else None
        if record is None:
            raise NotFoundError("%s: not found in %s %s, and %s cannot add it there; add it to "
                                "the configuration first" % (who, backend.container_label, container,
                                                             backend.kind))
        added.append(record)
    return added


def _change_for(backend, member, request, add=False):
    if request.state == "present":
        target_weight = _present_weight(backend, member, request)
        if member.state == "present" and (target_weight is None or target_weight == member.weight):
            return None
        return Change(member, "present", target_weight, add=add)
    if member.state == request.state:
        return None
    return Change(member, request.state, _drained_weight(backend) if request.state == "drained" else None)


def _drained_weight(backend):
    return getattr(backend, "drained_weight", None)


def _present_weight(backend, member, request):
    resolve = getattr(backend, "target_weight", None)
    if resolve is not None:
        return resolve(member, request.weight)
    return request.weight


def check_capacity(backend, members, targets, changes, min_active):
    """Refuse to leave fewer than min_active members in rotation and healthy.

    Only containers where this plan takes a member *out of rotation* are
    checked: re-running a drain on an already drained member never fails
    because of capacity that was already gone.
    """
    if min_active == ("count", 0):
        return
    target_keys = set(m.key for m in targets)
    for container in sorted(set(c.member.container for c in changes if c.member.in_rotation)):
        in_container = [m for m in members if m.container == container]
        remaining = [m for m in in_container
                     if m.key not in target_keys and m.in_rotation and m.usable]
        needed = required_active(min_active, len(in_container))
        if len(remaining) < needed:
            leaving = ", ".join(sorted(m.name for m in targets if m.container == container))
            raise GuardRefusedError(
                "%s %s: taking %s out would leave %d of %d members in rotation and healthy, "
                "below min_active=%s (%d); restore other members first or lower min_active"
                % (backend.container_label, container, leaving, len(remaining), len(in_container),
                   describe_min_active(min_active), needed))


# --------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------

class PollPolicy(object):
    """Immutable back-off: start fast so a reached goal is seen at once, grow
    to ``cap`` so a long drain does not hammer the balancer."""

    def __init__(self, cap=0.5, first=0.05, factor=1.5):
        self.cap = max(float(cap), 0.01)
        self.first = min(first, self.cap)
        self.factor = factor

    def intervals(self):
        interval = self.first
        while True:
            yield interval
            interval = min(interval * self.factor, self.cap)


def goal_reached(member, state, drain_threshold):
    if state == "present":
        return member.state == "present" and member.usable
    # drained / absent: sessions at or below the threshold.  A member that is
    # gone (deleted) has no sessions left to wait for.
    return member.sessions <= drain_threshold


def wait_for(backend, scope, targets, request, clock=time.monotonic, sleep=time.sleep):
    """Poll until every target reached the goal of ``request.state`` or the
    deadline passes.  Returns (latest member records by key, seconds waited,
    keys still pending)."""
    poll = getattr(backend, "poll", None) or backend.read
    start = clock()
    deadline = start + request.wait_timeout
    keys = set(m.key for m in targets)
    latest = dict((m.key, m) for m in targets)
    intervals = PollPolicy(request.poll_interval).intervals()
    while True:
        for member in poll(scope):
            if member.key in keys:
                latest[member.key] = member
        pending = [k for k in keys if not _key_reached(latest, k, request)]
        now = clock()
        if not pending or now >= deadline:
            return latest, now - start, sorted(pending)
        sleep(min(next(intervals), max(deadline - now, 0)))


def _key_reached(latest, key, request):
    member = latest.get(key)
    return member is not None and goal_reached(member, request.state, request.drain_threshold)


# --------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------

def run(backend, request, check_mode=False, clock=time.monotonic, sleep=time.sleep):
    """Plan, apply, wait; return the module result.  Raises LBError."""
    validate = getattr(backend, "validate", None)
    if validate is not None:
        validate(request)
    scope = request.containers
    members = backend.read(scope)
    the_plan = plan(backend, members, request)
    # Snapshots: a backend may update the records it is handed.
    before = dict((m.key, _after(m, None, copy=True)) for m in the_plan.targets)

    if check_mode:
        return _result(backend, request, the_plan, before, _planned(the_plan), 0.0, [], check_mode=True)

    two_phase = request.state == "absent" and getattr(backend, "removes_member", False)
    if two_phase:
        return _run_remove(backend, request, the_plan, before, scope, clock, sleep)

    _apply(backend, the_plan.changes, request, the_plan, before)
    latest, waited, pending = _settle(backend, scope, the_plan.targets, request, clock, sleep)
    result = _result(backend, request, the_plan, before, latest, waited, pending)
    return _finish_wait(backend, request, result, latest, pending, scope, the_plan, before, waited)


def _run_remove(backend, request, the_plan, before, scope, clock, sleep):
    """``absent`` on a balancer that deletes the member: drain first so the
    sessions can be watched, then delete once they are gone."""
    drain = [Change(c.member, "drained", _drained_weight(backend))
             for c in the_plan.changes if c.member.state == "present"]
    _apply(backend, drain, request, the_plan, before)
    latest, waited, pending = _settle(backend, scope, the_plan.targets, request, clock, sleep,
                                      state="drained")
    if pending and request.on_timeout == "fail":
        result = _result(backend, request, the_plan, before, latest, waited, pending)
        raise WaitTimeoutError(_timeout_msg(backend, request, latest, pending, "removing"), result)
    note = None
    if pending:
        # Worded before the removal: afterwards the members read as gone (0 sessions).
        warning = _timeout_msg(backend, request, latest, pending, "removed anyway")
    if pending and request.on_timeout == "force":
        note = backend.force([latest[k] for k in pending])
    _apply(backend, the_plan.changes, request, the_plan, before)
    latest = _reread(backend, scope, the_plan.targets, gone_ok=True)
    result = _result(backend, request, the_plan, before, latest, waited, [])
    if pending:
        result["warnings"].append(warning + ("; " + note if note else ""))
    return result


def _apply(backend, changes, request, the_plan, before):
    done = []
    for change in changes:
        try:
            backend.apply(change, request)
        except LBError as error:
            # Report what was already written, so nothing is silently half-changed.
            latest = _planned_subset(done, before)
            error.result = _result(backend, request, the_plan, before, latest, 0.0, [])
            error.result["changed"] = bool(done)
            raise
        done.append(change)


def _settle(backend, scope, targets, request, clock, sleep, state=None):
    goal = _with_state(request, state)
    if not request.wait:
        return _reread(backend, scope, targets, gone_ok=True), 0.0, []
    return wait_for(backend, scope, targets, goal, clock=clock, sleep=sleep)


def _with_state(request, state):
    """The same request with another goal (absent waits as drained first)."""
    if state is None or state == request.state:
        return request
    goal = shallow_copy(request)
    goal.state = state
    return goal


def _reread(backend, scope, targets, gone_ok=False):
    keys = set(m.key for m in targets)
    latest = {}
    for member in backend.read(scope):
        if member.key in keys:
            latest[member.key] = member
    if gone_ok:
        for member in targets:
            if member.key not in latest:
                latest[member.key] = _gone(member)
    return latest


def _gone(member):
    return Member(member.container, member.name, member.address, member.port, state="absent",
                  weight=None, sessions=0, health="unknown", backup=member.backup)


def _finish_wait(backend, request, result, latest, pending, scope, the_plan, before, waited):
    if not pending:
        return result
    if request.on_timeout == "continue":
        result["warnings"].append(_timeout_msg(backend, request, latest, pending, "continuing"))
        return result
    if request.on_timeout == "force" and request.state != "present":
        # force() may return a note saying what it really did (a balancer that
        # cannot end sessions says so); None means the sessions were ended.
        note = backend.force([latest[k] for k in pending])
        latest = _reread(backend, scope, the_plan.targets, gone_ok=True)
        # Still pending: the summary must not say the goal was reached.
        result = _result(backend, request, the_plan, before, latest, waited, pending)
        if note:
            result["msg"] += "; after %.1fs: %s" % (waited, note)
        else:
            result["msg"] += "; forced the remaining sessions closed after %.1fs" % waited
        return result
    raise WaitTimeoutError(_timeout_msg(backend, request, latest, pending, "giving up"), result)


def _timeout_msg(backend, request, latest, pending, action):
    parts = []
    for key in pending:
        member = latest[key]
        if request.state == "present":
            parts.append("%s/%s health %s" % (member.container, member.name, member.health))
        else:
            parts.append("%s/%s %d session%s" % (member.container, member.name, member.sessions,
                                                 "" if member.sessions == 1 else "s"))
    if request.state == "present":
        hint = "check the member's health check"
    else:
        hint = "raise wait_timeout or use on_timeout: force"
    return ("%s %s: not %s after wait_timeout=%gs (%s); %s, %s"
            % (backend.member_label, request.selector.describe(),
               "usable" if request.state == "present" else "drained",
               request.wait_timeout, ", ".join(parts), action, hint))


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

def _planned(the_plan):
    """The member records as they will be after the plan (check mode)."""
    latest = {}
    for member in the_plan.targets:
        change = the_plan.change_for(member)
        latest[member.key] = _after(member, change)
    return latest


def _planned_subset(done, before):
    latest = dict(before)
    for change in done:
        latest[change.member.key] = _after(change.member, change)
    return latest


def _after(member, change, copy=False):
    if change is None and not copy:
        return member
    if change is None:
        change = Change(member, member.state, None)
    weight = member.weight if change.weight is None else change.weight
    return Member(member.container, member.name, member.address, member.port, state=change.state,
                  weight=weight, sessions=member.sessions, health=member.health,
                  backup=member.backup, details=member.details)


def _entry(before, after):
    entry = after.as_dict()
    entry["state_before"] = before.state
    entry["weight_before"] = before.weight
    return entry


def _result(backend, request, the_plan, before, latest, waited, pending, check_mode=False):
    entries = []
    diff_before, diff_after = {}, {}
    for target in the_plan.targets:
        member = before.get(target.key, target)
        after = latest.get(member.key, member)
        entries.append(_entry(member, after))
        label = "%s/%s" % member.key
        diff_before[label] = {"state": member.state, "weight": member.weight}
        planned = _after(member, the_plan.change_for(member))
        diff_after[label] = {"state": planned.state, "weight": planned.weight}
    changed = bool(the_plan.changes)
    return dict(
        changed=changed,
        members=entries,
        waited=round(waited, 3),
        msg=_summary(backend, request, the_plan, waited, pending, check_mode),
        diff=dict(before=diff_before, after=diff_after),
        warnings=[],
    )


def _summary(backend, request, the_plan, waited, pending, check_mode):
    who = "%s %s" % (backend.member_label, request.selector.describe())
    containers = sorted(set(m.container for m in the_plan.targets))
    where = "%s %s" % (backend.container_label, ", ".join(containers))
    if not the_plan.targets:
        return "%s: already absent from %s" % (who, _scope_text(backend, request.containers))
    verb = request.state
    if check_mode:
        action = "would be %s" % verb if the_plan.changes else "already %s" % verb
        return "%s in %s: %s (check mode)" % (who, where, action)
    action = ("%s" % verb) if the_plan.changes else ("already %s" % verb)
    if request.wait and not pending and waited > 0:
        action += ", goal reached after %.2fs" % waited
    return "%s in %s: %s" % (who, where, action)


def _scope_text(backend, containers):
    if not containers:
        return "any %s" % backend.container_label
    return "%s %s" % (backend.container_label, ", ".join(containers))


def describe(backend, containers=None, selector=None):
    """What the *_info modules return: the members, unchanged."""
    members = backend.read(containers)
    if selector is not None:
        members = [m for m in members if selector.matches(m)]
    return dict(changed=False, members=[m.as_dict() for m in members],
                msg="%d %s(s) in %s" % (len(members), backend.member_label,
                                        _scope_text(backend, containers)))
