# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible connection plugin "uml": tasks run in a lab/uml/run --agent guest.

A lab tool, not part of the collection: lab/uml/run --agent puts this
directory on ANSIBLE_CONNECTION_PLUGINS (and the mailbox in LAB_UML_AGENT)
for the host commands a guest starts with lab/uml/on-host.  The controller
(ansible-playbook, templating, every action plugin) then runs on the host at
the host's speed, and only what a real controller would run on a managed
node - the modules - runs in the guest, as over SSH.  See lab/uml/README.md.
"""

from __future__ import annotations

DOCUMENTATION = """
    name: uml
    short_description: run tasks in a user-mode Linux guest started by lab/uml/run --agent
    description:
        - Sends each command and file transfer to the guest's agent (lab/uml/agent.py) through a mailbox
          directory both sides see, and waits for its answer.
        - No pipelining - Python reads a program from a pipe one byte per system call, which costs seconds
          in the user-mode kernel; the module file is put and run as a file instead.
    author: gentle.lb contributors
    options:
        agent:
            description: The guest agent's mailbox directory (a host path).
            type: str
            required: true
            env:
                - name: LAB_UML_AGENT
            vars:
                - name: ansible_uml_agent
        stall_timeout:
            description: Fail when the agent has not shown a sign of life (its heartbeat) for this many seconds.
            type: float
            default: 60
            env:
                - name: LAB_UML_AGENT_STALL_TIMEOUT
            vars:
                - name: ansible_uml_stall_timeout
"""

import itertools
import json
import os
import shutil
import time

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# The host side polls for the answer; a short interval keeps a request's
# latency to a few milliseconds beyond the agent's own 20 ms look.
POLL = 0.005
POLL_MAX = 0.05
_COUNTER = itertools.count()


class Connection(ConnectionBase):
    """Commands and files through the guest agent's mailbox."""

    transport = "uml"
    has_pipelining = False

    def _connect(self):
        if not self._connected:
            mailbox = self.get_option("agent")
            if not os.path.exists(os.path.join(mailbox, "ready")):
                raise AnsibleConnectionFailure(
                    "uml guest agent %s: no agent listens there (no 'ready' file); start the guest with "
                    "lab/uml/run --agent and run the controller through lab/uml/on-host" % mailbox)
            display.vvv("ESTABLISH UML AGENT CONNECTION %s" % mailbox, host=self._play_context.remote_addr)
            self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv("EXEC %s" % to_text(cmd), host=self._play_context.remote_addr)
        return self._request({"op": "exec", "cmd": to_text(cmd), "stdin": in_data is not None}, stdin=in_data)

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        rid = self._new_id()
        try:
            shutil.copyfile(in_path, self._path(rid, ".data"))
            rc, unused, err = self._request({"op": "put", "dst": out_path}, rid=rid)
        finally:
            self._remove(rid, (".data",))
        if rc != 0:
            raise AnsibleError("failed to transfer %s to %s in the guest: %s" % (in_path, out_path, to_text(err)))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        rid = self._new_id()
        rc, unused, err = self._request({"op": "fetch", "src": in_path}, rid=rid, keep=(".data",))
        try:
            if rc != 0:
                raise AnsibleError("failed to fetch %s from the guest: %s" % (in_path, to_text(err)))
            shutil.copyfile(self._path(rid, ".data"), out_path)
        finally:
            self._remove(rid, (".data",))

    def close(self):
        self._connected = False

    def reset(self):
        pass

    # -- the mailbox --

    def _new_id(self):
        return "%d-%d-%d" % (os.getpid(), next(_COUNTER), time.monotonic_ns())

    def _path(self, rid, suffix):
        return os.path.join(self.get_option("agent"), rid + suffix)

    def _publish(self, rid, suffix, data):
        tmp = self._path("." + rid, suffix + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.rename(tmp, self._path(rid, suffix))

    def _request(self, request, stdin=None, rid=None, keep=()):
        """Hand one request to the agent; wait for it; (rc, stdout, stderr)."""
        rid = rid or self._new_id()
        mailbox = self.get_option("agent")
        stall = float(self.get_option("stall_timeout"))
        try:
            if stdin is not None:
                self._publish(rid, ".in", to_bytes(stdin))
            self._publish(rid, ".req", json.dumps(request).encode())
        except OSError as exc:
            raise AnsibleConnectionFailure("uml guest agent %s: cannot write a request (%s); has the guest "
                                           "stopped?" % (mailbox, exc))
        interval = POLL
        rc_file = self._path(rid, ".rc")
        while not os.path.exists(rc_file):
            time.sleep(interval)
            interval = min(interval * 1.5, POLL_MAX)
            try:
                silent = time.time() - os.stat(os.path.join(mailbox, "heartbeat")).st_mtime
            except OSError:
                raise AnsibleConnectionFailure("uml guest agent %s: the mailbox is gone: the guest stopped "
                                               "while %s ran" % (mailbox, request["op"]))
            if silent > stall:
                raise AnsibleConnectionFailure(
                    "uml guest agent %s: no heartbeat for %.0f s (stall_timeout %g s) while %s ran: the guest is "
                    "stuck or starved of CPU" % (mailbox, silent, stall, request["op"]))
        try:
            with open(rc_file) as handle:
                rc = int(handle.read().strip())
            out, err = (self._read(rid, suffix) for suffix in (".out", ".err"))
        finally:
            self._remove(rid, tuple(s for s in (".req", ".taken", ".in", ".out", ".err", ".rc") if s not in keep))
        return rc, out, err

    def _read(self, rid, suffix):
        try:
            with open(self._path(rid, suffix), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return b""

    def _remove(self, rid, suffixes):
        for suffix in suffixes:
            try:
                os.unlink(self._path(rid, suffix))
            except FileNotFoundError:
                pass
