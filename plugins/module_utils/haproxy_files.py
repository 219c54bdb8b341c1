# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What haproxy_member reads and writes on the balancer's own file system:
HAProxy's configuration (does a reload keep server states, and from which
file), the server-state-file written after every change, and the memory of
the agent checks gentle.lb disabled.  Every file is replaced atomically.

Never imports ansible.module_utils.basic; Python 3.9 compatible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import shlex
import tempfile
import time

try:
    import fcntl
except ImportError:     # not on Linux/BSD: files are still replaced atomically, without the lock
    fcntl = None

from ansible_collections.gentle.lb.plugins.module_utils.member import CommandError, PermissionDeniedError


# --------------------------------------------------------------------------
# HAProxy's configuration: does it keep server states across a reload?
# --------------------------------------------------------------------------

DEFAULT_CONFIG = "/etc/haproxy/haproxy.cfg"
# Keywords that open a section of haproxy.cfg (indentation means nothing there).
SECTIONS = ("global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
            "mailers", "program", "http-errors", "ring", "cache", "log-forward", "fcgi-app", "crt-store",
            "traces", "acme")


def _config_words(line):
    """The words of one configuration line, quotes removed, comment dropped;
    [] for a blank line or one this reader cannot split (unbalanced quotes)."""
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return []


class ServerStateConfig(object):
    """What HAProxy's configuration says about server states on a reload:

    * global ``server-state-file <file>`` (relative to ``server-state-base``);
    * per backend (or ``listen``), inherited from its ``defaults`` section
      (the last one before it, or the one named with ``from``):
      ``load-server-state-from-file global`` (the global file), ``local``
      (``server-state-file-name``, else the backend's name, in
      ``server-state-base``) or ``none`` / not set (nothing is loaded: runtime
      states and weights are lost on a reload)."""

    def __init__(self, files):
        self.files = files
        self.global_file = None
        self.base = None
        self.backends = {}      # name -> {"load": ..., "file_name": ...}

    @classmethod
    def parse(cls, sources):
        """``sources``: [(path, text)] in the order HAProxy loads them."""
        config = cls([path for path, _text in sources])
        named_defaults = {}
        last_defaults = {}
        section, settings = None, None
        for _path, text in sources:
            for line in text.splitlines():
                words = _config_words(line)
                if not words:
                    continue
                keyword = words[0]
                if keyword in SECTIONS:
                    section, settings = keyword, None
                    name = words[1] if len(words) > 1 and words[1] != "from" else None
                    parent = None
                    if "from" in words[1:] and words.index("from") + 1 < len(words):
                        parent = named_defaults.get(words[words.index("from") + 1])
                    if keyword == "defaults":
                        # A defaults section resets everything, or starts from the one it names.
                        settings = dict(parent or {})
                        last_defaults = settings
                        if name:
                            named_defaults[name] = settings
                    elif keyword in ("backend", "listen") and name:
                        settings = dict(last_defaults if parent is None else parent)
                        config.backends[name] = settings
                    continue
                value = words[1] if len(words) > 1 else None
                if section == "global":
                    if keyword == "server-state-file":
                        config.global_file = value
                    elif keyword == "server-state-base":
                        config.base = value
                elif settings is not None:
                    if keyword == "load-server-state-from-file":
                        settings["load"] = value
                    elif keyword == "server-state-file-name":
                        settings["file_name"] = value or "use-backend-name"
        return config

    def _resolve(self, name):
        if name.startswith("/"):
            return name
        if self.base and self.base.startswith("/"):
            return os.path.join(self.base, name)
        return None      # relative to HAProxy's own working directory: unknown here

    def loaded_file(self, backend):
        """(the file ``backend`` loads its server states from on a reload, or
        None; a few words on why None)."""
        settings = self.backends.get(backend)
        if settings is None:
            return None, "backend %s is not in %s" % (backend, ", ".join(self.files))
        load = settings.get("load")
        if load == "global":
            if not self.global_file:
                return None, ("backend %s loads the global server-state-file, but global has no "
                              "server-state-file" % backend)
            path = self._resolve(self.global_file)
            if path is None:
                return None, ("server-state-file %s is relative and server-state-base is not an absolute "
                              "directory" % self.global_file)
            return path, None
        if load == "local":
            name = settings.get("file_name")
            name = backend if name in (None, "use-backend-name") else name
            path = self._resolve(name)
            if path is None:
                return None, ("backend %s loads its own state file %s, but server-state-base is not an "
                              "absolute directory" % (backend, name))
            return path, None
        return None, "backend %s has no load-server-state-from-file" % backend


def config_files(paths):
    """[(path, text)] of the configuration files, as HAProxy reads them: a
    directory stands for its ``*.cfg`` files in lexical order.  Raises OSError."""
    sources = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith(".cfg"))
            files = [os.path.join(path, n) for n in names]
        else:
            files = [path]
        for name in files:
            with open(name, "r") as handle:
                sources.append((name, handle.read()))
    return sources


def running_config_paths(pid):
    """The configuration files the HAProxy process ``pid`` was started with,
    from /proc/<pid>/cmdline; None when that is not a readable HAProxy
    process on this host."""
    try:
        with open("/proc/%d/cmdline" % int(pid), "rb") as handle:
            argv = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
    except (OSError, ValueError, TypeError):
        return None
    return config_paths_from_argv(argv)


def config_paths_from_argv(argv):
    """The ``-f`` arguments (and those after ``--``) of an HAProxy command
    line; relative ones count only under an absolute ``-C`` directory (else
    None: HAProxy's working directory is not known here)."""
    # The binary may run through a loader (ld-linux ... /usr/sbin/haproxy -f ...).
    start = next((i for i, a in enumerate(argv) if os.path.basename(a).startswith("haproxy")), None)
    if start is None:
        return None
    paths, chdir, index, rest = [], None, start + 1, False
    while index < len(argv):
        word = argv[index]
        if rest:
            paths.append(word)
        elif word == "--":
            rest = True
        elif word in ("-f", "-C") and index + 1 < len(argv):
            if word == "-f":
                paths.append(argv[index + 1])
            else:
                chdir = argv[index + 1]
            index += 1
        index += 1
    resolved = []
    for path in paths:
        if not path.startswith("/"):
            if not (chdir and chdir.startswith("/")):
                return None
            path = os.path.join(chdir, path)
        resolved.append(path)
    return resolved or None


# --------------------------------------------------------------------------
# Files written on the balancer: atomically, under a lock
# --------------------------------------------------------------------------

class _DirectoryLock(object):
    """An exclusive flock on a directory, around a read-modify-rename of a
    file in it (two runs saving at once must not lose each other's write)."""

    def __init__(self, directory):
        self.directory = directory
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.directory, os.O_RDONLY)
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)      # closing releases the flock


def atomic_write(path, text):
    """Replace ``path`` with ``text``: a temporary file in the same directory,
    fsync, the old file's mode and owner (0644 for a new one), rename, fsync of
    the directory.  A reader sees the old file or the new one, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            current = os.stat(path)
            os.chmod(tmp, current.st_mode & 0o7777)
            try:
                os.chown(tmp, current.st_uid, current.st_gid)
            except OSError:
                pass        # not root: the file is ours then
        except OSError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _file_error(kind, path, what, error):
    reason = getattr(error, "strerror", None) or str(error)
    if getattr(error, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDeniedError("%s %s: %s (%s); run the task as a user that may write there "
                                     "(become: true), or set %s to a writable path"
                                     % (kind, path, what, reason, kind))
    return CommandError("%s %s: %s (%s); fix the path or set %s" % (kind, path, what, reason, kind))


def save_server_states(transport, files):
    """Write ``show servers state`` to each server-state-file: ``files`` maps
    a path to the backend whose own (``local``) file it is, or to None for a
    global file (every backend).  The reply is taken under the directory's
    lock, so the last file renamed holds the latest state."""
    for path in sorted(files):
        directory = os.path.dirname(os.path.abspath(path))
        try:
            with _DirectoryLock(directory):
                atomic_write(path, transport.servers_state_text(files[path]))
        except (IOError, OSError) as error:
            raise _file_error("server_state_file", path, "cannot be written", error)


def check_writable(kind, path, create=False):
    """Refuse, before anything is changed, a file that cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if create and not os.path.isdir(directory):
        try:
            os.makedirs(directory, 0o755)
        except OSError as error:
            raise _file_error(kind, path, "its directory cannot be created", error)
    if not os.path.isdir(directory):
        raise _file_error(kind, path, "its directory does not exist", OSError(errno.ENOENT, "No such directory"))
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise _file_error(kind, path, "cannot be written", OSError(errno.EACCES, "Permission denied"))


# --------------------------------------------------------------------------
# Agent checks gentle.lb disabled, remembered on the balancer
# --------------------------------------------------------------------------

DEFAULT_AGENT_MEMORY = "/var/lib/gentle.lb/haproxy-agents.json"


class AgentMemory(object):
    """Which agent checks gentle.lb disabled to keep a drain, so that
    ``present`` enables exactly those again and leaves alone an agent that an
    operator disabled.  A small JSON file on the balancer::

        {"version": 1, "disabled": {"/run/haproxy/admin.sock app/web3": {"at": 1700000000}}}

    Read-modify-write under the directory's lock, written atomically; only
    touched when a server in scope has an agent check."""

    def __init__(self, path=None, clock=time.time):
        self.path = path or DEFAULT_AGENT_MEMORY
        self.clock = clock

    def _read(self):
        try:
            with open(self.path, "r") as handle:
                data = json.load(handle)
            return dict(data.get("disabled") or {})
        except (IOError, OSError) as error:
            if error.errno == errno.ENOENT:
                return {}
            raise _file_error("agent_memory", self.path, "cannot be read", error)
        except (ValueError, AttributeError):
            return {}           # not ours or damaged: nothing is remembered, it is rewritten whole

    def holds(self, key):
        return key in self._read()

    def check_writable(self):
        check_writable("agent_memory", self.path, create=True)

    def _update(self, change):
        self.check_writable()
        try:
            with _DirectoryLock(os.path.dirname(os.path.abspath(self.path))):
                disabled = self._read()
                change(disabled)
                atomic_write(self.path, json.dumps({"version": 1, "disabled": disabled}, indent=1,
                                                   sort_keys=True) + "\n")
        except (IOError, OSError) as error:
            raise _file_error("agent_memory", self.path, "cannot be written", error)

    def remember(self, keys):
        now = int(self.clock())
        self._update(lambda disabled: disabled.update((k, {"at": now}) for k in keys))

    def forget(self, key):
        self._update(lambda disabled: disabled.pop(key, None))
