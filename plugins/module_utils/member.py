# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The load-balancer-neutral core of gentle.lb.

Every member module works the same way, whatever balancer it speaks to::

    result = member.run(backend, request, check_mode=...)      # haproxy_member, ...
    result = member.describe(backend, containers, selectors)    # the *_info modules

``run`` does, in this order:

1. ``backend.validate(request)``: refuse bad input before any I/O.
2. Under the balancer's lock (``Backend.lock_key``, a file lock where the
   module runs): ``read`` the members in scope, ``plan`` (pick the targets,
   decide the writes, refuse zero matches and the capacity guard), ``apply``
   the writes, then ``read`` again to check that the capacity floor still holds
   with whatever other runs (other controllers, other AWX jobs) wrote at the
   same moment.  If it does not, this run undoes its own writes, lets go of the
   lock, waits a random moment and tries again; when the plan itself is then
   refused, the guard's error is raised and nothing is left changed.
3. ``wait`` for a *state*, not a count: every target must be in the requested
   admin state (and weight) *and* drained (sessions at or below the threshold)
   or usable.  A member that somebody else moves out of the requested state
   meanwhile (a reload that drops runtime state, an operator's ``enable``, an
   agent check) is put back through step 2 -- guard included -- with a warning,
   counted in ``reasserted``; with ``reassert: false`` the run fails at once
   with ``StateLostError``.
4. On timeout: fail, continue, or ``force`` (the balancer's own way to end the
   remaining sessions), then report what is still open.
5. Return one result shape: ``changed``, ``members``, ``waited``, ``reasserted``,
   ``msg``, ``diff``, ``warnings``; on failure the same, carried by the error.

The core knows states and waiting; it knows nothing about wire protocols and
nothing about Ansible.  A balancer is a subclass of :class:`Backend`.

Python 3.9 compatible: this file runs on the managed node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import math
import os
import random
import tempfile
import time
from copy import copy as shallow_copy


STATES = ("present", "drained", "absent")
ON_TIMEOUT = ("fail", "continue", "force")

# Health as the core understands it.  Backends map their balancer's own view:
# "up" (checks pass), "down" (checks fail), "unknown" (no check configured, or
# the balancer has no health view at all, as with IPVS): "unknown" is usable.
USABLE_HEALTH = ("up", "unknown")

# How long a run waits for another run's lock on the same balancer.  The lock
# is held only around read -> plan -> write -> re-read (milliseconds on a local
# socket, about a second on a slow F5), so a wait this long means a stuck run:
# go on without it -- the re-read after the write still protects the floor.
LOCK_TIMEOUT = 60.0
LOCK_DIR_ENV = "GENTLE_LB_LOCK_DIR"

# Runs that crossed the floor together undo their writes and try again after a
# random pause in [0, base * 2**attempt], capped; after this many tries the
# run gives up with GuardRefusedError (nothing left changed).
COLLISION_RETRIES = 8
COLLISION_BACKOFF = 0.05
COLLISION_BACKOFF_CAP = 1.0

# A member put back this many times that left its state again at the very
# next poll each time is being fought over: the core stops rather than flap it.
REASSERT_IN_A_ROW = 3

# After on_timeout: force, how long the core looks again for the sessions to
# end, so that the result says what is really still open.
FORCE_SETTLE = 2.0


# --------------------------------------------------------------------------
# Errors.  Wire clients translate their failures into these; only a module's
# main() turns them into fail_json, with ``error_type`` = the class name, which
# callers (the rolling_deploy role first) match on instead of message text.
# ``result`` carries whatever is known (the members as the failure left them),
# so a failure still reports the state it left.
# --------------------------------------------------------------------------

class LBError(Exception):
    """Base of every error gentle.lb reports.  The message is one line:
    ``<object> <name>: <what happened>; <what to do>``."""

    def __init__(self, msg, result=None):
        super(LBError, self).__init__(msg)
        self.msg = msg
        self.result = result or {}

    @property
    def error_type(self):
        return type(self).__name__


class InvalidInputError(LBError):
    """An option value the balancer would refuse (name alphabet, weight range)."""


class MissingLibraryError(LBError):
    """A Python library the chosen transport needs is not installed where the module runs."""

    def __init__(self, msg, library, traceback=None):
        super(MissingLibraryError, self).__init__(msg)
        self.library = library
        self.traceback = traceback


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
    """The capacity guard refused to take members out of rotation; nothing was
    left changed.  ``result["guard"]`` says, per container, how many members
    could leave now (``may_leave``), so a caller can split its request."""


class WaitTimeoutError(LBError):
    """The goal was not reached within wait_timeout; the members stay as written."""


class StateLostError(LBError):
    """Somebody else moved a member out of the requested state during the wait,
    and ``reassert`` is off (or the member can no longer be put back)."""


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

    def copy(self, **changes):
        fields = dict((name, getattr(self, name)) for name in self.__slots__)
        fields.update(changes)
        return Member(**fields)

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
    """How the user named one member: by name, or by address (and port)."""

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


def describe_selectors(selectors):
    return ", ".join(s.describe() for s in selectors)


class Request(object):
    """What the user asked for, in plain values.

    ``selectors``: one Selector or a list; a member is in scope when any of
    them matches it.  ``poll_interval`` None means the backend's own default.
    ``reassert``: put back a member that somebody else moved out of the
    requested state during the wait (else fail with StateLostError).
    """

    def __init__(self, state, selectors, containers=None, weight=None, min_active=1,
                 wait=True, wait_timeout=300.0, drain_threshold=0, poll_interval=None,
                 on_timeout="fail", reassert=True, options=None):
        if state not in STATES:
            raise InvalidInputError("state %s: not one of %s" % (state, ", ".join(STATES)))
        if on_timeout not in ON_TIMEOUT:
            raise InvalidInputError("on_timeout %s: not one of %s" % (on_timeout, ", ".join(ON_TIMEOUT)))
        if isinstance(selectors, Selector):
            selectors = [selectors]
        self.selectors = list(selectors or [])
        if not self.selectors:
            raise InvalidInputError("member: none named; give at least one name or address")
        self.state = state
        self.containers = list(containers) if containers else None
        self.weight = weight
        self.min_active = parse_min_active(min_active)
        self.wait = wait
        self.wait_timeout = float(wait_timeout)
        if self.wait_timeout < 0:
            raise InvalidInputError("wait_timeout %s: must be 0 or more seconds" % wait_timeout)
        self.drain_threshold = int(drain_threshold)
        if self.drain_threshold < 0:
            raise InvalidInputError("drain_threshold %s: must be 0 or more" % drain_threshold)
        self.poll_interval = None if poll_interval is None else float(poll_interval)
        if self.poll_interval is not None and self.poll_interval <= 0:
            raise InvalidInputError("poll_interval %s: must be above 0 seconds" % poll_interval)
        self.on_timeout = on_timeout
        self.reassert = reassert
        # Backend-specific options (IPVS forwarding, F5 drain_mode, ...), passed through untouched.
        self.options = options or {}

    def matches(self, member):
        return any(s.matches(member) for s in self.selectors)

    def describe(self):
        return describe_selectors(self.selectors)


class Goal(object):
    """The admin state (and weight) a target must be in while the core waits;
    ``weight`` None means any weight the state allows."""

    def __init__(self, state, weight=None):
        self.state = state
        self.weight = weight

    def holds(self, member):
        if member.state != self.state:
            return False
        if self.weight is not None and member.weight != self.weight:
            return False
        if self.state == "present" and member.weight is not None and member.weight <= 0:
            return False
        return True

    def describe(self):
        if self.weight is None:
            return self.state
        return "%s (weight %s)" % (self.state, self.weight)


class Change(object):
    """One planned write: ``member`` from its current state to (state, weight)."""

    def __init__(self, member, state, weight, add=False):
        self.member = member
        self.state = state
        self.weight = weight
        self.add = add

    @property
    def takes_out(self):
        """Does this write take an in-rotation member out of rotation?"""
        return self.member.in_rotation and self.state in ("drained", "absent")

    def __repr__(self):
        return "Change(%r -> %s w=%s%s)" % (self.member, self.state, self.weight, " add" if self.add else "")


class Plan(object):
    def __init__(self, targets, changes, goals):
        self.targets = targets      # every member in scope, changed or not
        self.changes = changes      # the writes; empty means changed=False
        self.goals = goals          # key -> Goal
        # The targets as read, copied before anything is written (a backend
        # may update the records it is handed).
        self.before = _snapshot(targets)

    def change_for(self, member):
        for change in self.changes:
            if change.member.key == member.key:
                return change
        return None

    @property
    def containers(self):
        return sorted(set(m.container for m in self.targets))


# --------------------------------------------------------------------------
# The backend contract
# --------------------------------------------------------------------------

class Backend(object):
    """What the core needs from a balancer.  Subclass it; override ``read`` and
    ``apply``, and whichever optional method your balancer needs.

    The core calls, in this order (see ``run``)::

        validate(request)                  no I/O; raise InvalidInputError
        lock_key()                         which lock serialises runs on this balancer
        read(containers)                   the members in scope
        identity()                         what the balancer is right now (for drift messages)
        target_weight(member, requested)   \\  while planning
        new_member(container, sel, req)     > (pure: no I/O, no state kept
        check_plan(plan, members, request) /   beyond what read() saw)
        prepare(changes, request)          once, before the first write
        apply(change, request)             once per write
        read(containers)                   after the writes, to check the floor
        apply(undo, request)               only if the floor was crossed meanwhile
        poll(containers)                   while waiting (containers = the targets')
        force(members)                     on_timeout: force
        close()                            always, at the end

    Backends report side remarks with ``warn(text)``; the core puts them in the
    result.  A backend keeps no other state between calls than what it read.
    """

    kind = "balancer"                 # in messages: "HAProxy", "IPVS", "F5"
    container_label = "container"     # "backend", "virtual service", "pool"
    member_label = "member"           # "server", "real server", "member"
    removes_member = False            # absent deletes the member (IPVS, F5)
    drained_weight = None             # the weight of a drained member (IPVS: 0); None keeps it
    can_force = False                 # force() can end the remaining sessions
    default_poll_interval = 0.5       # the cap of the polling back-off, seconds

    def __init__(self):
        self.warnings = []

    def warn(self, text):
        if text not in self.warnings:
            self.warnings.append(text)

    # --- required

    def read(self, containers):
        """-> [Member] in ``containers`` (None: every container).
        Raises NotFoundError for a container that does not exist."""
        raise NotImplementedError

    def apply(self, change, request):
        """Write one Change; raise LBError subclasses on failure."""
        raise NotImplementedError

    # --- optional

    def validate(self, request):
        """Refuse what the balancer would refuse, before any I/O."""

    def lock_key(self):
        """A string naming this balancer as seen from where the module runs
        (a socket path, a host:port); runs with the same key take turns.
        None: no local lock (the re-read after the write still guards)."""
        return None

    def identity(self):
        """Something that changes when the balancer restarts or reloads
        (HAProxy: its pid and start time); None if unknown."""
        return None

    def explain_drift(self, before, now):
        """A few words on why a member may have left its state, from two
        ``identity()`` values ("HAProxy was reloaded (pid 1 -> 2)"); None if
        nothing can be said."""
        return None

    def poll(self, containers):
        """A cheaper read used while waiting (default: ``read``)."""
        return self.read(containers)

    def target_weight(self, member, requested):
        """The absolute weight ``present`` must leave (None: keep the current one)."""
        return requested

    def new_member(self, container, selector, request):
        """A Member (state "absent") describing a member ``present`` can
        create in ``container``, or None if the balancer cannot."""
        return None

    def check_plan(self, plan, members, request):
        """Refuse a plan the balancer would accept but not carry out (raise
        LBError); called last in planning, so in check mode too."""

    def prepare(self, changes, request):
        """Called once before the first write of a run (IPVS remembers the
        weights it is about to set to 0)."""

    def force(self, members):
        """End the remaining sessions of ``members`` (``on_timeout: force``);
        return a one-line note of what was really done, or None."""
        raise InvalidInputError("on_timeout force: %s cannot end sessions; use on_timeout fail or continue"
                                % self.kind)

    def result_warnings(self, result, request):
        """Warnings about the balancer as the run left it (IPVS: schedulers
        without fallback, persistence).  ``request`` is None for describe()."""
        return []

    def describe_extra(self, containers):
        """More keys for the *_info modules' result (IPVS: ``services``)."""
        return {}

    def close(self):
        """Release what the backend holds (an F5 token)."""


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
    """Decide what must change.  Raises NotFoundError, InvalidInputError and
    GuardRefusedError before anything is written, so check mode reports them too."""
    targets = []
    missing = []
    for selector in request.selectors:
        found = [m for m in members if selector.matches(m)]
        if not found:
            missing.append(selector)
        for m in found:
            if m not in targets:
                targets.append(m)

    added = []
    if request.state != "absent":
        for selector in request.selectors:
            added.extend(_members_to_add(backend, members, selector, request))
        targets.extend(added)
        still_missing = [s for s in missing if not any(s.matches(m) for m in added)]
        if still_missing:
            raise NotFoundError("%s %s: not found in %s; check the name or address, or name the %s it "
                                "belongs to" % (backend.member_label, describe_selectors(still_missing),
                                                _scope_text(backend, request.containers, members),
                                                backend.container_label))
    elif missing and not backend.removes_member:
        # This balancer never deletes a member, so one it does not have is a typo,
        # not a member already gone: say so rather than report it absent.
        raise NotFoundError("%s %s: not found in %s; %s never deletes %ss, so check the name or address"
                            % (backend.member_label, describe_selectors(missing),
                               _scope_text(backend, request.containers, members), backend.kind,
                               backend.member_label))

    changes = []
    goals = {}
    for member in targets:
        change, goal = _change_for(backend, member, request, add=member in added)
        goals[member.key] = goal
        if change is not None:
            changes.append(change)

    if request.state in ("drained", "absent"):
        check_capacity(backend, members, targets, changes, request.min_active)
    the_plan = Plan(targets, changes, goals)
    backend.check_plan(the_plan, members, request)
    return the_plan


def _members_to_add(backend, members, selector, request):
    """``present`` may create a member, but only in a container the user named."""
    if request.state != "present" or not request.containers:
        return []
    found_in = set(m.container for m in members if selector.matches(m))
    added = []
    for container in request.containers:
        if container in found_in:
            continue
        record = backend.new_member(container, selector, request)
        if record is None:
            raise NotFoundError("%s %s: not found in %s %s, and %s cannot add it there; add it to "
                                "the configuration first" % (backend.member_label, selector.describe(),
                                                             backend.container_label, container, backend.kind))
        added.append(record)
    return added


def _change_for(backend, member, request, add=False):
    """(the Change to write or None, the Goal to wait for)."""
    if request.state == "present":
        weight = backend.target_weight(member, request.weight)
        if weight is not None and weight <= 0:
            # present means in rotation; weight 0 would take the member out of it
            # without the capacity guard, so it is refused rather than guarded.
            raise InvalidInputError(
                "%s %s in %s %s: weight %s would leave it at weight 0, out of rotation; state=present needs "
                "a weight above 0 (use state=drained to take it out)"
                % (backend.member_label, member.name, backend.container_label, member.container,
                   request.weight))
        goal = Goal("present", weight)
        if member.state == "present" and (weight is None or weight == member.weight):
            return None, goal
        return Change(member, "present", weight, add=add), goal
    if request.state == "absent" and backend.removes_member:
        goal = Goal("absent")
    else:
        goal = Goal(request.state, backend.drained_weight if request.state == "drained" else None)
    if member.state == request.state and (goal.weight is None or member.weight == goal.weight):
        return None, goal
    return Change(member, request.state, backend.drained_weight if request.state == "drained" else None), goal


def guard_view(members, targets, min_active):
    """Per container holding a target: how many members, how many are in
    rotation and healthy now, how many are needed, and how many of the targets
    may leave (the numbers a caller needs to split a refused request)."""
    target_keys = set(m.key for m in targets)
    view = []
    for container in sorted(set(m.container for m in targets)):
        in_container = [m for m in members if m.container == container]
        active = [m for m in in_container if m.in_rotation and m.usable]
        needed = required_active(min_active, len(in_container))
        leaving = sorted(m.name for m in active if m.key in target_keys)
        view.append(dict(container=container, members=len(in_container), active=len(active),
                         needed=needed, leaving=leaving, may_leave=max(0, len(active) - needed)))
    return view


def check_capacity(backend, members, targets, changes, min_active):
    """Refuse to leave fewer than min_active members in rotation and healthy.

    Only containers where this plan takes a member *out of rotation* are
    checked: re-running a drain on an already drained member never fails
    because of capacity that was already gone.
    """
    if min_active == ("count", 0):
        return
    leaving_in = set(c.member.container for c in changes if c.takes_out)
    if not leaving_in:
        return
    view = [v for v in guard_view(members, targets, min_active) if v["container"] in leaving_in]
    for entry in view:
        remaining = entry["active"] - len(entry["leaving"])
        if remaining < entry["needed"]:
            leaving = ", ".join(sorted(m.name for m in targets if m.container == entry["container"]))
            raise GuardRefusedError(
                "%s %s: taking %s out would leave %d of %d members in rotation and healthy, "
                "below min_active=%s (%d); restore other members first or lower min_active"
                % (backend.container_label, entry["container"], leaving, remaining, entry["members"],
                   describe_min_active(min_active), entry["needed"]),
                dict(guard=view))


def _floor_crossed(members, writes, min_active):
    """After our writes: is any container we took members out of below the floor?"""
    if min_active == ("count", 0):
        return []
    crossed = []
    for container in sorted(set(c.member.container for c in writes if c.takes_out)):
        in_container = [m for m in members if m.container == container]
        active = [m for m in in_container if m.in_rotation and m.usable]
        needed = required_active(min_active, len(in_container))
        if len(active) < needed:
            crossed.append((container, len(active), needed))
    return crossed


# --------------------------------------------------------------------------
# The lock where the module runs
# --------------------------------------------------------------------------

class BalancerLock(object):
    """An exclusive ``flock`` on a file named after the balancer, so that runs
    on this host (forks, parallel playbooks, AWX jobs on one node) take turns
    around read -> plan -> write -> re-read.  Runs on other hosts are not
    serialised by it; the re-read after the write covers them."""

    def __init__(self, key, clock=time.monotonic, sleep=time.sleep, timeout=LOCK_TIMEOUT):
        self.key = key
        self.clock = clock
        self.sleep = sleep
        self.timeout = timeout
        self.fd = None
        self.warning = None

    @staticmethod
    def path_for(key):
        directory = os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir()
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
        return os.path.join(directory, "gentle-lb-%s.lock" % digest)

    def __enter__(self):
        if self.key is None:
            return self
        try:
            import fcntl
        except ImportError:     # not on Linux/BSD: the re-read still guards
            return self
        try:
            path = self.path_for(self.key)
        except OSError as error:
            # tempfile.gettempdir() found no directory this user can write to.
            self.warning = ("lock for %s: no directory to keep it in (%s); going on without it (the capacity "
                            "guard still re-reads after writing); set %s to a writable directory"
                            % (self.key, error.strerror or error, LOCK_DIR_ENV))
            return self
        try:
            # Read-only is enough for flock, and lets every user share one file
            # in /tmp whoever created it; O_NOFOLLOW refuses a planted symlink.
            self.fd = os.open(path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as error:
            self.warning = ("lock %s: cannot be opened (%s); going on without it (the capacity guard still "
                            "re-reads after writing)" % (path, os.strerror(error.errno)))
            return self
        deadline = self.clock() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except (IOError, OSError) as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
            if self.clock() >= deadline:
                os.close(self.fd)
                self.fd = None
                self.warning = ("lock %s: still held by another run after %gs; going on without it (the "
                                "capacity guard still re-reads after writing)" % (path, self.timeout))
                return self
            self.sleep(0.02)

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)     # closing releases the flock
            self.fd = None


# --------------------------------------------------------------------------
# Writing, guarded against concurrent runs
# --------------------------------------------------------------------------

class _Collision(Exception):
    """The floor was crossed by this run's writes together with another's."""

    def __init__(self, crossed):
        super(_Collision, self).__init__(crossed)
        self.crossed = crossed


class Writer(object):
    """Plans and writes under the balancer's lock, with the floor re-checked
    after the write and this run's writes undone if another run crossed it at
    the same moment."""

    def __init__(self, backend, request, clock, sleep, rng=random):
        self.backend = backend
        self.request = request
        self.clock = clock
        self.sleep = sleep
        self.rng = rng

    def plan_and_write(self, check_mode=False, only=None):
        """Read, plan, write; returns (plan, members as first read, identity).
        ``only``: restrict the targets to these keys (re-assertion)."""
        attempt = 0
        while True:
            with BalancerLock(self.backend.lock_key(), clock=self.clock, sleep=self.sleep) as lock:
                if lock.warning:
                    self.backend.warn(lock.warning)
                members = self.backend.read(self.request.containers)
                identity = None
                if not check_mode and self.request.wait:
                    identity = self.backend.identity()
                the_plan = plan(self.backend, members, self.request)
                if only is not None:
                    the_plan = _restrict(the_plan, only)
                if check_mode or not the_plan.changes:
                    return the_plan, members, identity
                try:
                    self._write(the_plan)
                    return the_plan, members, identity
                except _Collision as collision:
                    crossed = collision.crossed
            attempt += 1
            if attempt >= COLLISION_RETRIES:
                raise GuardRefusedError(
                    "%s %s: other runs kept taking members out at the same moment (%d tries); nothing was "
                    "left changed; run again, or serialise the runs" % (
                        self.backend.container_label, ", ".join(c for c, _a, _n in crossed), attempt),
                    dict(guard=guard_view(self.backend.read(self.request.containers),
                                          the_plan.targets, self.request.min_active)))
            self.sleep(self.rng.uniform(0, min(COLLISION_BACKOFF_CAP, COLLISION_BACKOFF * (2 ** attempt))))

    def _write(self, the_plan):
        backend, request = self.backend, self.request
        writes = first_writes(backend, request, the_plan)
        backend.prepare(writes, request)
        done = []
        for change in writes:
            try:
                backend.apply(change, request)
            except LBError as error:
                error.result = _partial_result(backend, request, the_plan, done)
                raise
            done.append(change)
        if not any(c.takes_out for c in writes):
            return
        after = backend.read(request.containers)
        crossed = _floor_crossed(after, writes, request.min_active)
        if not crossed:
            return
        # Another run took members out between our read and our write: put
        # ours back, so the floor is crossed only for this short moment.
        now = dict((m.key, m) for m in after)
        for change in reversed(done):
            current = now.get(change.member.key)
            if change.takes_out and current is not None:
                backend.apply(Change(current, change.member.state, change.member.weight), request)
        raise _Collision(crossed)


def first_writes(backend, request, the_plan):
    """What is written before the wait: the plan's changes, except that
    ``absent`` on a balancer that deletes members drains them first (the
    sessions of a deleted member cannot be watched); the core deletes them
    once the wait is over."""
    if request.state == "absent" and backend.removes_member:
        return [Change(c.member, "drained", backend.drained_weight)
                for c in the_plan.changes if c.member.state == "present"]
    return the_plan.changes


def _restrict(the_plan, keys):
    targets = [m for m in the_plan.targets if m.key in keys]
    changes = [c for c in the_plan.changes if c.member.key in keys]
    goals = dict((k, g) for k, g in the_plan.goals.items() if k in keys)
    return Plan(targets, changes, goals)


def _partial_result(backend, request, the_plan, done):
    before = the_plan.before
    latest = dict(before)
    for change in done:
        latest[change.member.key] = _after(change.member, change)
    result = _result(backend, request, the_plan, before, latest, 0.0, [])
    result["changed"] = bool(done)
    return result


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


def goal_reached(member, goal, drain_threshold):
    """The goal is a state: in the goal's admin state (and weight), and then
    usable (present) or drained (sessions at or below the threshold)."""
    if member is None:
        return False
    if not goal.holds(member):
        return False
    if goal.state == "present":
        return member.usable
    return member.sessions <= drain_threshold


class Waiter(object):
    """Polls until every target reached its goal or the deadline passes,
    re-asserting the requested state when somebody else changes it."""

    def __init__(self, backend, request, identity, clock, sleep):
        self.backend = backend
        self.request = request
        self.identity = identity
        self.clock = clock
        self.sleep = sleep
        self.reasserted = 0
        self._undone = {}       # key -> times in a row it left its state right after being put back

    def wait(self, the_plan, state=None, timeout=None):
        """-> (latest member records by key, seconds waited, keys still pending).
        ``state``: wait for this state instead of the plan's (absent drains first)."""
        request, backend = self.request, self.backend
        goals = dict(the_plan.goals)
        if state is not None:
            goals = dict((k, Goal(state, backend.drained_weight if state == "drained" else None)) for k in goals)
        scope = the_plan.containers or request.containers
        start = self.clock()
        deadline = start + (request.wait_timeout if timeout is None else timeout)
        keys = set(m.key for m in the_plan.targets)
        latest = dict((m.key, m) for m in the_plan.targets)
        cap = request.poll_interval or backend.default_poll_interval
        intervals = PollPolicy(cap).intervals()
        while True:
            seen = dict((m.key, m) for m in backend.poll(scope) if m.key in keys)
            drifted = []
            for key in sorted(keys):
                member = seen.get(key)
                if backend.removes_member and (member is None or member.state == "absent"):
                    latest[key] = _gone(latest[key])
                    if request.state == "absent":
                        continue        # gone is what absent means on this balancer
                    drifted.append(key)
                    continue
                if member is None:
                    continue            # not in this poll's answer: keep the last record
                latest[key] = member
                if not goals[key].holds(member):
                    drifted.append(key)
                else:
                    self._undone.pop(key, None)
            now = self.clock()
            if drifted and now < deadline:
                self._reassert(drifted, latest, goals, state or request.state)
                intervals = PollPolicy(cap).intervals()     # watch the re-asserted state closely
                self.sleep(min(next(intervals), max(deadline - now, 0)))
                continue
            pending = sorted(k for k in keys
                             if not (goal_reached(latest.get(k), goals[k], request.drain_threshold)
                                     or (request.state == "absent" and backend.removes_member
                                         and latest[k].state == "absent")))
            if not pending or now >= deadline:
                return latest, now - start, pending
            self.sleep(min(next(intervals), max(deadline - now, 0)))

    def _reassert(self, drifted, latest, goals, state):
        """Put the drifted members back into ``state`` (guarded, locked), or
        fail with StateLostError when that is off or cannot be done."""
        backend, request = self.backend, self.request
        now_identity = backend.identity()
        why = backend.explain_drift(self.identity, now_identity)
        self.identity = now_identity
        seen = "; ".join("%s/%s %s" % (k[0], k[1], _state_words(latest[k])) for k in drifted)
        vanished = [k for k in drifted if backend.removes_member and latest[k].state == "absent"]
        for key in drifted:
            self._undone[key] = self._undone.get(key, 0) + 1
        fighting = [k for k in drifted if self._undone[k] > REASSERT_IN_A_ROW]
        if not request.reassert or vanished or fighting:
            if vanished:
                reason = "deleted by someone else, so it cannot be put back"
            elif fighting:
                reason = ("put back %d times, it left again at once each time: something keeps changing it "
                          "(an agent check, a config management loop); stop that, then rerun" % REASSERT_IN_A_ROW)
            else:
                reason = "reassert is off, so this run stops here"
            raise StateLostError(
                "%s %s: left %s during the wait (now %s%s); %s; find out who changes it, then rerun"
                % (backend.member_label, _names(drifted), state, seen, "; " + why if why else "", reason),
                self._result(drifted, latest, goals))
        again = shallow_copy(request)
        again.state = state
        writer = Writer(backend, again, self.clock, self.sleep)
        try:
            the_plan, members, _identity = writer.plan_and_write(only=set(drifted))
        except LBError as error:
            partial = self._result(drifted, latest, goals)
            partial.update(error.result or {})
            error.result = partial
            error.msg = "%s (while putting back %s, found %s%s)" % (
                error.msg, _names(drifted), seen, "; " + why if why else "")
            raise
        if not the_plan.changes:
            now = dict((m.key, m) for m in members)
            stuck = [k for k in drifted if k in now and not goals[k].holds(now[k])]
            if stuck:
                raise StateLostError(
                    "%s %s: left %s during the wait (now %s) and this balancer cannot put it back; "
                    "check it by hand" % (backend.member_label, _names(stuck), state, seen),
                    self._result(drifted, latest, goals))
            return          # somebody else put it back already
        self.reasserted += len(the_plan.changes)
        backend.warn("%s %s: found %s while waiting for %s%s; set %s again"
                     % (backend.member_label, ", ".join("%s/%s" % k for k in drifted), seen.replace(
                         "%s/%s " % drifted[0], "", 1) if len(drifted) == 1 else seen,
                        state, " (%s)" % why if why else "", state))

    def _result(self, keys, latest, goals):
        targets = [latest[k] for k in keys]
        the_plan = Plan(targets, [], dict((k, goals[k]) for k in keys))
        result = _result(self.backend, self.request, the_plan, _snapshot(targets), latest, 0.0, sorted(keys))
        result["reasserted"] = self.reasserted
        return result


def _names(keys):
    names = []
    for key in keys:
        if key[1] not in names:
            names.append(key[1])
    return ", ".join(names)


def _state_words(member):
    words = member.state
    if member.weight is not None and member.state != "absent":
        words += " weight %s" % member.weight
    return words


# --------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------

def run(backend, request, check_mode=False, clock=time.monotonic, sleep=time.sleep):
    """Plan, apply, wait; return the module result.  Raises LBError, whose
    ``result`` is the same shape.  The backend is closed in every case."""
    result = None
    waiter = None
    try:
        backend.validate(request)
        if request.on_timeout == "force" and not backend.can_force:
            raise InvalidInputError("on_timeout force: %s cannot end sessions; use on_timeout fail or "
                                    "continue" % backend.kind)
        writer = Writer(backend, request, clock, sleep)
        the_plan, _members, identity = writer.plan_and_write(check_mode=check_mode)
        before = the_plan.before
        if check_mode:
            result = _result(backend, request, the_plan, before, _planned(the_plan), 0.0, [],
                             check_mode=True)
            return result
        waiter = Waiter(backend, request, identity, clock, sleep)
        if request.state == "absent" and backend.removes_member:
            result = _run_remove(backend, request, the_plan, before, waiter)
        else:
            latest, waited, pending = _settle(backend, request, the_plan, waiter)
            result = _result(backend, request, the_plan, before, latest, waited, pending)
            result = _finish_wait(backend, request, result, latest, pending, the_plan, before, waited, waiter)
        result["reasserted"] = waiter.reasserted
        return result
    except LBError as error:
        error.result = dict(error.result or {})
        error.result.setdefault("changed", False)
        error.result.setdefault("warnings", [])
        if waiter is not None:
            error.result["reasserted"] = waiter.reasserted
        result = error.result
        raise
    finally:
        if result is not None:
            _add_warnings(backend, result, request)
        backend.close()


def _add_warnings(backend, result, request):
    warnings = result.setdefault("warnings", [])
    extra = list(backend.result_warnings(result, request))
    for text in list(backend.warnings) + extra:
        if text not in warnings:
            warnings.append(text)


def _run_remove(backend, request, the_plan, before, waiter):
    """``absent`` on a balancer that deletes the member: the writer drained it
    (see first_writes), so the sessions can be watched; delete once they are gone."""
    latest, waited, pending = _settle(backend, request, the_plan, waiter, state="drained")
    if pending and request.on_timeout == "fail":
        result = _result(backend, request, the_plan, before, latest, waited, pending)
        raise WaitTimeoutError(_timeout_msg(backend, request, latest, pending, "removing", "drained"), result)
    note = None
    if pending:
        # Worded before the removal: afterwards the members read as gone (0 sessions).
        warning = _timeout_msg(backend, request, latest, pending, "removed anyway", "drained")
    if pending and request.on_timeout == "force":
        note = backend.force([latest[k] for k in pending])
    for change in the_plan.changes:
        member = latest.get(change.member.key, change.member)
        if member.state != "absent":
            backend.apply(Change(member, "absent", None), request)
    latest = _reread(backend, the_plan, gone_ok=True)
    result = _result(backend, request, the_plan, before, latest, waited, [])
    if pending:
        backend.warn(warning + ("; " + note if note else ""))
    return result


def _settle(backend, request, the_plan, waiter, state=None):
    if not request.wait:
        return _reread(backend, the_plan, gone_ok=True), 0.0, []
    return waiter.wait(the_plan, state=state)


def _reread(backend, the_plan, gone_ok=False):
    keys = set(m.key for m in the_plan.targets)
    latest = {}
    for member in backend.read(the_plan.containers or None):
        if member.key in keys:
            latest[member.key] = member
    if gone_ok:
        for member in the_plan.targets:
            if member.key not in latest:
                latest[member.key] = _gone(member)
    return latest


def _gone(member):
    return Member(member.container, member.name, member.address, member.port, state="absent",
                  weight=None, sessions=0, health="unknown", backup=member.backup)


def _finish_wait(backend, request, result, latest, pending, the_plan, before, waited, waiter):
    if not pending:
        return result
    if request.on_timeout == "continue":
        backend.warn(_timeout_msg(backend, request, latest, pending, "continuing"))
        return result
    if request.on_timeout == "force" and request.state != "present":
        note = backend.force([latest[k] for k in pending])
        # Look again: the result says what is really still open, not what was asked for.
        latest_after, _extra, still = waiter.wait(the_plan, timeout=FORCE_SETTLE)
        result = _result(backend, request, the_plan, before, latest_after, waited, still)
        result["msg"] = "%s; not drained after wait_timeout=%gs (%s), so %s; %s" % (
            _summary(backend, request, the_plan, latest_after, 0.0, [], False), request.wait_timeout,
            _open_text(latest, pending, "open"), note or "the remaining sessions were ended",
            _open_text(latest_after, still, "still open") if still else "no session is left")
        return result
    raise WaitTimeoutError(_timeout_msg(backend, request, latest, pending, "giving up"), result)


def _open_text(latest, keys, what):
    parts = []
    for key in keys:
        member = latest[key]
        parts.append("%s/%s %d session%s" % (member.container, member.name, member.sessions,
                                             "" if member.sessions == 1 else "s"))
    return "%s %s" % (", ".join(parts), what)


def _timeout_msg(backend, request, latest, pending, action, state=None):
    state = state or request.state
    parts = []
    for key in pending:
        member = latest[key]
        if state == "present":
            parts.append("%s/%s health %s" % (member.container, member.name, member.health))
        else:
            parts.append("%s/%s %d session%s" % (member.container, member.name, member.sessions,
                                                 "" if member.sessions == 1 else "s"))
    if state == "present":
        hint = "check the member's health check"
    else:
        hint = "raise wait_timeout or use on_timeout: force"
    return ("%s %s: not %s after wait_timeout=%gs (%s); %s, %s"
            % (backend.member_label, _names(pending),
               "usable" if state == "present" else "drained",
               request.wait_timeout, ", ".join(parts), action, hint))


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

def _snapshot(members):
    return dict((m.key, m.copy()) for m in members)


def _planned(the_plan):
    """The member records as they will be after the plan (check mode)."""
    latest = {}
    for member in the_plan.targets:
        latest[member.key] = _after(member, the_plan.change_for(member))
    return latest


def _after(member, change):
    if change is None:
        return member
    weight = member.weight if change.weight is None else change.weight
    return member.copy(state=change.state, weight=weight)


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
    return dict(
        changed=bool(the_plan.changes),
        members=entries,
        waited=round(waited, 3),
        reasserted=0,
        msg=_summary(backend, request, the_plan, latest, waited, pending, check_mode),
        diff=dict(before=diff_before, after=diff_after),
        warnings=[],
    )


def _summary(backend, request, the_plan, latest, waited, pending, check_mode):
    who = "%s %s" % (backend.member_label, request.describe())
    if not the_plan.targets:
        return "%s: already absent from %s" % (who, _scope_text(backend, request.containers))
    where = "%s %s" % (backend.container_label, ", ".join(the_plan.containers))
    verb = request.state
    if check_mode:
        action = "would be %s" % verb if the_plan.changes else "already %s" % verb
        return "%s in %s: %s (check mode)" % (who, where, action)
    action = ("%s" % verb) if the_plan.changes else ("already %s" % verb)
    reached = request.wait and not pending and all(
        goal_reached(latest.get(k), g, request.drain_threshold) or
        (g.state == "absent" and backend.removes_member)
        for k, g in the_plan.goals.items())
    if reached and waited > 0:
        action += ", goal reached after %.2fs" % waited
    elif request.wait and pending:
        action += ", goal not reached after %.2fs" % waited
    return "%s in %s: %s" % (who, where, action)


def _scope_text(backend, containers, members=None):
    if containers:
        return "%s %s" % (backend.container_label, ", ".join(containers))
    known = sorted(set(m.container for m in members or []))
    if known:
        return "any %s (searched %s)" % (backend.container_label, ", ".join(known))
    return "any %s" % backend.container_label


def describe(backend, containers=None, selectors=None):
    """What the *_info modules return: the members, unchanged.  The backend is
    closed in every case."""
    if isinstance(selectors, Selector):
        selectors = [selectors]
    try:
        members = backend.read(containers)
        if selectors:
            members = [m for m in members if any(s.matches(m) for s in selectors)]
        result = dict(changed=False, members=[m.as_dict() for m in members],
                      msg="%d %s(s) in %s" % (len(members), backend.member_label,
                                              _scope_text(backend, containers)))
        result.update(backend.describe_extra(containers))
        result["warnings"] = []
        _add_warnings(backend, result, None)
        return result
    finally:
        backend.close()
