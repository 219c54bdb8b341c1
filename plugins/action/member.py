# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gentle.lb.member: one entry point for every balancer, as ansible.builtin.package
is for package managers.  ``type`` picks the member module (``read: true``: its
*_info module); every other option
goes to it unchanged (module_defaults of that module and its action groups
apply).  ``options`` may carry the module's options as one mapping, for calls
built from data (the role's): ``gentle.lb.member: {type: ..., options: ...}``
without templating the whole task's arguments.  The result is the module's, plus ``type``, ``module`` and the
controller's clock around the call (``started``, ``ended``, ``elapsed``), which the
rolling_deploy role uses for its timings, and ``call_failed``, which a task's
``failed_when`` cannot hide."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# The one table of balancer types: a new balancer is one more line here (and
# its module).
MODULES = {
    "haproxy": "gentle.lb.haproxy_member",
    "ipvs": "gentle.lb.ipvs_member",
    "f5": "gentle.lb.f5_pool_member",
    "health_file": "gentle.lb.health_file_member",
    "lvs_director": "gentle.lb.keepalived_member",
}
# ``read: true`` reads instead of writing: the type's *_info module (the
# rolling_deploy role's analysis gate reads HAProxy's counters with it).
INFO_MODULES = {
    "haproxy": "gentle.lb.haproxy_member_info",
    "ipvs": "gentle.lb.ipvs_member_info",
    "f5": "gentle.lb.f5_pool_member_info",
}


def _with_module_defaults(fqcn, task, args, templar):
    """The task's module_defaults for ``fqcn`` (and its action groups) under ``args``."""
    try:
        from ansible.executor.module_common import _apply_action_arg_defaults
    except ImportError:     # ansible-core < 2.19
        from ansible.executor.module_common import get_action_args_with_defaults
        return get_action_args_with_defaults(fqcn, args, task.module_defaults, templar,
                                             action_groups=task._parent._play._action_groups)
    return _apply_action_arg_defaults(fqcn, task, args, templar)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        options = args.pop("options", None) or {}
        if not isinstance(options, dict):
            raise AnsibleActionFail("options: a mapping of the chosen module's options, not %s"
                                    % type(options).__name__)
        args = dict(options, **args)
        kind = args.pop("type", None)
        if kind not in MODULES:
            raise AnsibleActionFail("type %s: not one of %s; set type to the kind of balancer"
                                    % (kind, ", ".join(sorted(MODULES))))
        # Not "info": that is an option of health_file_member (HAProxy's view).
        read = bool(args.pop("read", False))
        if read and kind not in INFO_MODULES:
            raise AnsibleActionFail("type %s: read is not available; it is for %s"
                                    % (kind, ", ".join(sorted(INFO_MODULES))))
        module = INFO_MODULES[kind] if read else MODULES[kind]
        args = _with_module_defaults(module, self._task, args, self._templar)
        started = time.time()
        result = self._execute_module(module_name=module, module_args=args, task_vars=task_vars)
        # call_failed survives a task's failed_when (the role reads results
        # itself, by error_type, and keeps the task green).
        ended = time.time()
        result.update(type=kind, module=module, started=round(started, 3), ended=round(ended, 3),
                      elapsed=round(ended - started, 3), call_failed=bool(result.get("failed")))
        return result
