# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors HAPROXY_CONNECTION_ARGS in plugins/module_utils/specs.py.
    DOCUMENTATION = r"""
options:
  socket:
    description:
      - The HAProxy runtime API (stats socket) to talk to, at C(level admin).
      - A unix socket path such as V(/run/haproxy/admin.sock), or V(tcp://HOST:PORT) for a
        C(stats socket ipv4@HOST:PORT level admin) listener.
      - When neither O(socket) nor O(stats_url) is set, V(/run/haproxy/admin.sock) is used
        (Debian's and Ubuntu's packaged default).
      - Mutually exclusive with O(stats_url).
      - If neither O(socket) nor O(stats_url) is set, the environment variable E(HAPROXY_SOCKET) is
        used, else E(HAPROXY_STATS_URL). An option given to the task always wins over both variables.
    type: str
  stats_url:
    description:
      - The URL of HAProxy's statistics page, such as V(http://lb1:8404/stats), used instead of the
        runtime API through the page's admin form (C(stats admin if ...) must be configured).
        Useful when the controller reaches the balancer over HTTP only.
      - The stats page cannot change weights and cannot add servers.
      - If neither O(socket) nor O(stats_url) is set and E(HAPROXY_SOCKET) is not set either, the
        environment variable E(HAPROXY_STATS_URL) is used.
    type: str
  stats_user:
    description:
      - User name for the statistics page (C(stats auth USER:PASSWORD)).
      - If not set, the environment variable E(HAPROXY_STATS_USER) is used.
    type: str
  stats_password:
    description:
      - Password for the statistics page.
      - If not set, the environment variable E(HAPROXY_STATS_PASSWORD) is used.
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of an V(https://) O(stats_url).
      - If not set, the environment variable E(HAPROXY_VALIDATE_CERTS) is used.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for HAProxy to answer one command or request.
    type: float
    default: 5
  master_socket:
    description:
      - The master CLI of HAProxy in master-worker mode (the socket of C(haproxy -W -S <socket>), as the
        packaged systemd units run it), a unix socket path or V(tcp://HOST:PORT). Used beside O(socket),
        which must reach the same HAProxy (checked).
      - After a reload the old worker keeps serving the connections it had, and O(socket) (served by the new
        worker) no longer shows them. With O(master_socket), a server's sessions are counted in every live
        worker (C(show proc), C(@!<pid> show stat)), RV(members[].workers) reports them per process, the wait of
        M(gentle.lb.haproxy_member) for V(drained) and V(absent) lasts until the old workers' sessions are gone
        too, and its O(gentle.lb.haproxy_member#module:on_timeout=force) ends them there as well
        (C(@!<pid> shutdown session); old workers refuse C(shutdown sessions server)).
      - If not set, the environment variable E(HAPROXY_MASTER_SOCKET) is used.
    type: str
  config:
    description:
      - HAProxy's configuration on the host the module runs on (files, or directories whose C(*.cfg) files
        are read in lexical order, as HAProxy does), read for C(server-state-file), C(server-state-base),
        C(load-server-state-from-file) and C(server-state-file-name).
      - Not set, the files the running HAProxy was started with (its C(-f) arguments, read from
        C(/proc/<pid>/cmdline) of the process answering O(socket)), else, for a unix O(socket),
        V(/etc/haproxy/haproxy.cfg). Over a TCP socket or O(stats_url) nothing is guessed, since that may be
        another host's HAProxy.
    type: list
    elements: path
"""
