# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drains that write through a file and read through a balancer's view.

Some balancers are told to drain a member by a file rather than a command:
HAProxy whose ``option httpchk`` probes a page on the node (move the page
aside: the check fails), keepalived whose maintenance ``MISC_CHECK`` looks for
a file on the director (create it: the check fails and keepalived sets the
weight to 0).  The balancer notices the file only after its next checks, so
the write is not done when the file is moved: it is done when the balancer's
own view shows the member out.

``FileDrainBackend`` is the core's backend for such drains (see
``member.Backend``): it writes through files and reads through another
backend (``HAProxyBackend``, ``IPVSBackend``), so the core's guard, wait and
re-assertion apply unchanged:

* the administrative state of a member it manages is the file's (moved aside
  or maintenance file present: ``drained``), the rest (weight, sessions,
  health) is the balancer's;
* ``prepare`` writes every file of the run at once (the balancer's reaction
  times overlap), ``apply`` then returns only once the balancer shows the
  member out of rotation - under the core's lock, so the re-read after the
  write and any other run on this host see the drain the balancer really made;
* a file the balancer does not react to within ``notice_timeout`` is put back
  and the run fails with ``NoticeTimeoutError``: nothing is left changed.

Without a view (``view=None``) nothing can be read but the files: the module
turns the capacity guard off and waits a computed time instead (see
``computed_wait``), saying so.

Python 3.9 compatible: this file runs on the managed node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import time

from ansible_collections.gentle.lb.plugins.module_utils.member import (
    Backend, CommandError, InvalidInputError, LBError, Member, PermissionDeniedError, PollPolicy)


class NoticeTimeoutError(LBError):
    """The file was written but the balancer did not take the member out of
    rotation in time (its check does not look at this file?); the file was put
    back, nothing is left changed."""


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

def _os_error(what, path, error):
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDeniedError("%s %s: %s; run the task as a user who may write there (become)"
                                     % (what, path, os.strerror(error.errno)))
    return CommandError("%s %s: %s" % (what, path, os.strerror(error.errno)))


class AsideSwitch(object):
    """A file the balancer probes (health_file): in rotation while ``path``
    exists; drained by renaming it to ``aside`` and back."""

    def __init__(self, path, aside=None):
        self.path = path
        self.aside = aside or path + ".rolling_deploy"
        self.label = "health file %s" % path

    def is_out(self):
        return not os.path.exists(self.path)

    def take_out(self):
        if self.is_out():
            return False
        try:
            os.rename(self.path, self.aside)
        except OSError as error:
            raise _os_error("health file", self.path, error)
        return True

    def put_back(self):
        if not self.is_out():
            return False
        if not os.path.exists(self.aside):
            raise CommandError("health file %s: missing, and not at %s either; put the page the balancer "
                               "probes back by hand (or deploy it), then rerun" % (self.path, self.aside))
        try:
            os.rename(self.aside, self.path)
        except OSError as error:
            raise _os_error("health file", self.aside, error)
        return True

    def changed_at(self):
        """When the file was last moved (a rename sets the inode's ctime)."""
        for path in (self.path, self.aside):
            try:
                return os.stat(path).st_ctime
            except OSError:
                continue
        return None

    def details(self):
        return dict(path=self.path, aside=self.aside, file_in_place=not self.is_out())


class MaintenanceSwitch(object):
    """A maintenance file the balancer's check looks for (keepalived's
    ``MISC_CHECK``): drained while it exists.  ``aliases`` are the other names
    the same check looks for (a real server's name, address, address:port):
    any of them drains it, so putting it back fails while another one is left."""

    def __init__(self, path, aliases=()):
        self.path = path
        self.aliases = [a for a in aliases if a != path]
        self.label = "maintenance file %s" % path

    def is_out(self):
        return os.path.exists(self.path) or any(os.path.exists(a) for a in self.aliases)

    def take_out(self):
        if os.path.exists(self.path):
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            os.close(fd)
        except OSError as error:
            raise _os_error("maintenance file", self.path, error)
        return True

    def put_back(self):
        others = [a for a in self.aliases if os.path.exists(a)]
        if others:
            raise CommandError("maintenance file %s: %s also drains this real server and was not written by "
                               "this task; remove it too (or restore under that name), then rerun"
                               % (self.path, ", ".join(others)))
        try:
            os.unlink(self.path)
        except OSError as error:
            if error.errno == errno.ENOENT:
                return False
            raise _os_error("maintenance file", self.path, error)
        return True

    def changed_at(self):
        try:
            return os.stat(self.path).st_ctime
        except OSError:
            return None

    def details(self):
        return dict(maintenance_file=self.path, maintenance_file_present=os.path.exists(self.path))


class Target(object):
    """One member the run manages: how the view names it, and its file."""

    def __init__(self, selector, switch):
        self.selector = selector
        self.switch = switch


# --------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------

class FileDrainBackend(Backend):
    """Writes through files, reads through ``view`` (another Backend, read
    only).  Subclasses say when the view shows a member out of rotation
    (``seen_out``) and how its record reads once the file decides the
    administrative state (``adapt``)."""

    drained_weight = None
    can_force = False
    removes_member = False
    # What else to look at when the balancer never reacts to a written file.
    notice_hint = ""

    def __init__(self, view, targets, notice_timeout=30.0, clock=time.monotonic, sleep=time.sleep):
        super(FileDrainBackend, self).__init__()
        self.view = view
        self.targets = targets
        self.notice_timeout = float(notice_timeout)
        self.clock = clock
        self.sleep = sleep
        self._raw = {}              # key -> the view's own record, as last read
        self._written = []          # (switch, state) this run wrote, to undo if the balancer never reacts
        if view is None:
            self.kind = "health file"
            self.container_label = "files on"
            self.member_label = "health file"
        else:
            self.kind = view.kind
            self.container_label = view.container_label
            self.member_label = view.member_label
            self.default_poll_interval = view.default_poll_interval

    # --- what subclasses say about the view

    def seen_out(self, raw):
        """Does the balancer no longer send new sessions to this member?"""
        raise NotImplementedError

    def adapt(self, raw, switch):
        """The record the core sees for a member whose file decides its state."""
        raise NotImplementedError

    # --- the contract

    def validate(self, request):
        if request.state == "absent":
            raise InvalidInputError("state absent: a drain through a file has no absent state; use "
                                    "state=drained (and remove the member from the balancer's configuration)")
        if request.weight is not None:
            raise InvalidInputError("weight: a drain through a file cannot set weights; leave weight out")

    def lock_key(self):
        return self.view.lock_key() if self.view is not None else None

    def identity(self):
        return self.view.identity() if self.view is not None else None

    def explain_drift(self, before, now):
        return self.view.explain_drift(before, now) if self.view is not None else None

    def read(self, containers):
        if self.view is None:
            return self._files_only()
        return self._map(self.view.read(containers))

    def poll(self, containers):
        if self.view is None:
            return self._files_only()
        return self._map(self.view.poll(containers))

    def target_weight(self, member, requested):
        return None

    def check_plan(self, plan, members, request):
        """A member the balancer itself holds out (HAProxy's admin state set
        through its socket) cannot be put back through the file."""
        for change in plan.changes:
            raw = self._raw.get(change.member.key)
            if change.state == "present" and raw is not None and raw.state != "present" \
                    and self.view_holds_out(raw):
                raise CommandError(
                    "%s %s in %s %s: %s on %s itself, not through its file; put it back there (for "
                    "HAProxy gentle.lb.haproxy_member state=present), then rerun"
                    % (self.member_label, raw.name, self.container_label, raw.container, raw.state, self.kind))

    def view_holds_out(self, raw):
        """Is ``raw`` out of rotation because of the balancer's own admin state?"""
        return False

    def prepare(self, changes, request):
        """Write every file of this run before waiting for any, so that the
        balancer notices them all in the same few checks.  A write that fails
        undoes the ones before it."""
        self._written = []
        for change in changes:
            switch = self._switch_for(change.member)
            try:
                wrote = switch.take_out() if change.state == "drained" else switch.put_back()
            except LBError:
                self._undo_written()
                raise
            if wrote:
                self._written.append((switch, change.state))

    def apply(self, change, request):
        switch = self._switch_for(change.member)
        if change.state == "drained":
            if switch.take_out():
                self._written.append((switch, "drained"))
            self._wait_noticed(change.member)
        else:
            switch.put_back()

    def close(self):
        if self.view is not None:
            self.view.close()

    # --- helpers

    def _switch_for(self, member):
        for target in self.targets:
            if self._matches(target, member):
                return target.switch
        raise CommandError("%s %s: no file is known for it; name it in the task" % (self.member_label, member.name))

    @staticmethod
    def _matches(target, member):
        return target.selector.matches(member)

    def _map(self, members):
        self._raw = {}
        mapped = []
        for raw in members:
            target = next((t for t in self.targets if self._matches(t, raw)), None)
            if target is None:
                mapped.append(self.adapt_other(raw))
                continue
            self._raw[raw.key] = raw
            mapped.append(self.adapt(raw, target.switch))
        return mapped

    def adapt_other(self, raw):
        """A member this run does not manage, as the core should count it."""
        return raw

    def _files_only(self):
        members = []
        for target in self.targets:
            name = target.selector.name or target.switch.path
            members.append(Member("this host", name, target.selector.address, target.selector.port,
                                  state="drained" if target.switch.is_out() else "present",
                                  weight=None, sessions=0, health="unknown",
                                  details=target.switch.details()))
        return members

    def _wait_noticed(self, member):
        """Poll the view until the balancer shows ``member`` out of rotation
        (every record of it: a member in two containers is out of both)."""
        if self.view is None:
            return
        deadline = self.clock() + self.notice_timeout
        intervals = PollPolicy(self.default_poll_interval).intervals()
        while True:
            records = [m for m in self.view.poll([member.container]) if m.key == member.key]
            if records and all(self.seen_out(m) for m in records):
                return
            if self.clock() >= deadline:
                switch = self._switch_for(member)
                self._undo_written()
                state = records[0].health if records else "gone"
                raise NoticeTimeoutError(
                    "%s %s in %s %s: %s was written, but after %gs %s still has it in rotation (%s); it "
                    "was put back and nothing is left changed; check that the balancer's check looks at "
                    "this file, or raise the check's timing options%s"
                    % (self.member_label, member.name, self.container_label, member.container, switch.label,
                       self.notice_timeout, self.kind, state, self.notice_hint))
            self.sleep(next(intervals))

    def _undo_written(self):
        """Put back every file this run wrote (a file shared by several
        containers is undone for all of them)."""
        for switch, state in reversed(self._written):
            try:
                if state == "drained":
                    switch.put_back()
                else:
                    switch.take_out()
            except LBError as error:
                self.warn("%s: could not be undone (%s); check it by hand" % (switch.label, error.msg))
        self._written = []


def computed_wait(switches, seconds, clock=time.time, sleep=time.sleep):
    """Without a balancer view: wait until ``seconds`` have passed since the
    most recent change of any of the files (a file changed long ago is not
    waited on again).  Returns the seconds slept."""
    stamps = [s.changed_at() for s in switches]
    stamps = [s for s in stamps if s is not None]
    if not stamps:
        return 0.0
    left = max(stamps) + seconds - clock()
    if left <= 0:
        return 0.0
    sleep(left)
    return left


# --------------------------------------------------------------------------
# The two views
# --------------------------------------------------------------------------

class HealthFileBackend(FileDrainBackend):
    """A page HAProxy probes (``option httpchk``), read through HAProxy's view:
    a server is out once its check fails (``DOWN``, or ``DOWN`` going up)."""

    def seen_out(self, raw):
        return raw.health in ("down", "going_up") or raw.state != "present"

    def view_holds_out(self, raw):
        return raw.state != "present"

    def adapt(self, raw, switch):
        details = dict(raw.details)
        details.update(switch.details())
        state = "drained" if switch.is_out() else raw.state
        return raw.copy(state=state, details=details)


class KeepalivedBackend(FileDrainBackend):
    """keepalived's maintenance files, read through the director's IPVS table:
    keepalived quiesces a failed real server to weight 0 (inhibit_on_failure),
    so weight 0 is out and a weight above 0 is keepalived's checks passing."""

    # keepalived before 2.3 can stop running a MISC_CHECK for good when its
    # script times out as it exits (acassen/keepalived#2363): a loaded
    # director then never sees the file.
    notice_hint = ("; if keepalived's log says 'Misc script ... child (PID n) lost', its maintenance check no longer "
                   "runs (a keepalived bug before 2.3): only a restart brings it back, and a restart flushes IPVS, so "
                   "move the VIPs to the peer first (docs/lvs_director.md)")

    def seen_out(self, raw):
        return not raw.weight

    def adapt(self, raw, switch):
        details = dict(raw.details)
        details.update(switch.details())
        weight = raw.weight or None
        # The weight is keepalived's to set: present waits until it is above 0
        # again (health "up"), without the core reading weight 0 as drift.
        return raw.copy(state="drained" if switch.is_out() else "present", weight=weight,
                        health="up" if weight else "down", details=details)

    def adapt_other(self, raw):
        return raw.copy(health="up" if raw.weight else "down")
