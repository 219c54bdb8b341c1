# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ansible layer shared by every gentle.lb module: argument specs (each one
mirrored by a doc fragment in plugins/doc_fragments/), and the two functions that
turn the core's results and errors into exit_json / fail_json.

Declared once here so that haproxy_member and haproxy_member_info (and the IPVS
and F5 pairs) cannot drift apart.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import gc
import os

from ansible.module_utils.errors import AnsibleFallbackNotFound

from ansible_collections.gentle.lb.plugins.module_utils.member import MissingLibraryError, Request


def env_fallback(*names, **kwargs):
    """Ansible's env_fallback, except that an empty variable counts as unset.

    An AWX/AAP credential injector sets every variable it names, rendering the
    fields left blank as empty strings: a HAProxy credential with only a stats
    page would otherwise also set ``socket=''`` (mutually exclusive with
    ``stats_url``), and an F5 credential without a port ``server_port=''``."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise AnsibleFallbackNotFound


# Mirrored by doc fragment gentle.lb.waiting.
WAIT_ARGS = dict(
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="float", default=300.0),
    drain_threshold=dict(type="int", default=0),
    poll_interval=dict(type="float"),
    on_timeout=dict(type="str", default="fail", choices=["fail", "continue", "force"]),
    reassert=dict(type="bool", default=True),
)

# Mirrored by doc fragment gentle.lb.guard.
GUARD_ARGS = dict(
    min_active=dict(type="raw", default=1),
)

# Mirrored by doc fragment gentle.lb.haproxy_connection.
# socket and stats_url choose the transport.  Their environment variables are
# resolved in haproxy_connection(), not by env_fallback: an explicit option must
# win over *both* variables, so that an AWX credential exporting HAPROXY_STATS_URL
# does not collide with a task that names a socket (mutually_exclusive would fire).
HAPROXY_TRANSPORT_ENV = dict(socket="HAPROXY_SOCKET", stats_url="HAPROXY_STATS_URL")
HAPROXY_CONNECTION_ARGS = dict(
    socket=dict(type="str"),
    stats_url=dict(type="str"),
    stats_user=dict(type="str", fallback=(env_fallback, ["HAPROXY_STATS_USER"])),
    stats_password=dict(type="str", no_log=True, fallback=(env_fallback, ["HAPROXY_STATS_PASSWORD"])),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["HAPROXY_VALIDATE_CERTS"])),
    timeout=dict(type="float", default=5.0),
    master_socket=dict(type="str", fallback=(env_fallback, ["HAPROXY_MASTER_SOCKET"])),
    config=dict(type="list", elements="path"),
)
HAPROXY_CONNECTION_RULES = dict(
    mutually_exclusive=[["socket", "stats_url"]],
    required_together=[["stats_user", "stats_password"]],
)

# Mirrored by doc fragment gentle.lb.f5_connection.  The same keys are accepted
# inside ``provider`` (as F5's own modules do); the environment fallbacks are
# resolved here, in the module process, so task-level ``environment:`` works.
_F5_KEYS = dict(
    server=dict(type="str", fallback=(env_fallback, ["F5_SERVER"])),
    server_port=dict(type="int", fallback=(env_fallback, ["F5_SERVER_PORT"])),
    user=dict(type="str", fallback=(env_fallback, ["F5_USER"])),
    password=dict(type="str", no_log=True, fallback=(env_fallback, ["F5_PASSWORD"])),
    validate_certs=dict(type="bool", fallback=(env_fallback, ["F5_VALIDATE_CERTS"])),
    transport=dict(type="str", choices=["rest", "soap"]),
    timeout=dict(type="float"),
    token_cache=dict(type="bool"),
)
F5_CONNECTION_ARGS = dict(copy.deepcopy(_F5_KEYS))
F5_CONNECTION_ARGS["provider"] = dict(type="dict", options=dict(
    (key, dict((k, v) for k, v in spec.items() if k != "fallback")) for key, spec in _F5_KEYS.items()))
F5_DEFAULTS = dict(server_port=443, validate_certs=True, transport="rest", timeout=30.0, token_cache=True)


def argument_spec(*parts):
    """Merge spec dictionaries (deep copies, so modules never share mutable specs)."""
    spec = {}
    for part in parts:
        spec.update(copy.deepcopy(part))
    return spec


def haproxy_connection(params):
    """The HAProxy connection options, with the transport chosen in this order:
    the task's socket or stats_url; else HAPROXY_SOCKET; else HAPROXY_STATS_URL."""
    socket, stats_url = params.get("socket"), params.get("stats_url")
    if not socket and not stats_url:
        socket = os.environ.get(HAPROXY_TRANSPORT_ENV["socket"]) or None
        if not socket:
            stats_url = os.environ.get(HAPROXY_TRANSPORT_ENV["stats_url"]) or None
    return dict(socket=socket, stats_url=stats_url, stats_user=params.get("stats_user"),
                stats_password=params.get("stats_password"),
                validate_certs=params.get("validate_certs", True), timeout=params.get("timeout", 5.0),
                master_socket=params.get("master_socket"), config=params.get("config"))


def f5_connection(params):
    """Top-level options win over ``provider``; then documented defaults."""
    provider = params.get("provider") or {}
    resolved = {}
    for key in _F5_KEYS:
        value = params.get(key)
        if value is None:
            value = provider.get(key)
        if value is None:
            value = F5_DEFAULTS.get(key)
        resolved[key] = value
    return resolved


def request_from_params(params, selectors, containers, weight=None, options=None):
    """Build the core's Request from the shared options."""
    if isinstance(containers, str):
        containers = [containers]
    return Request(
        state=params["state"],
        selectors=selectors,
        containers=containers,
        weight=weight,
        min_active=params.get("min_active", 1),
        wait=params.get("wait", True),
        wait_timeout=params.get("wait_timeout", 300.0),
        drain_threshold=params.get("drain_threshold", 0),
        poll_interval=params.get("poll_interval"),
        on_timeout=params.get("on_timeout", "fail"),
        reassert=params.get("reassert", True),
        options=options,
    )


def _before_exit():
    """The process ends right after the result is printed.  Python's final
    garbage collection then walks every object ansible-core's imports made
    (0.2-0.3 s of a module run on a busy 2-core machine, after the work is
    done); frozen objects are skipped, and memory goes back with the process."""
    gc.freeze()


def exit_with(module, result):
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    _before_exit()
    module.exit_json(**result)


def fail_with(module, error):
    """One place turns the core's errors into fail_json: the one-line message,
    ``error_type`` (the error class's name, which callers match on), and the
    partial result the error carries."""
    result = dict(error.result or {})
    result.pop("msg", None)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    result.setdefault("changed", False)
    result["error_type"] = error.error_type
    if isinstance(error, MissingLibraryError) and error.traceback:
        result["exception"] = error.traceback
    if not module._diff:
        result.pop("diff", None)
    _before_exit()
    module.fail_json(msg=error.msg, **result)
