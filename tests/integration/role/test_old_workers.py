# -*- coding: utf-8 -*-
"""A reload during a rollout's reach: HAProxy in master-worker mode (as its
systemd unit runs it) is reloaded while a long request is open on web1, so
the old worker holds that request and the new worker's admin socket shows
web1 with no session.  With the binding's master_socket the role's drain
counts the sessions of every live worker: web1 is not deployed while the
request is open, and the request is answered by the old version."""

import http.client
import os
import threading
import time

from conftest import admin_states, playbook
from lab.haproxy_lab import LOCALHOST, wait_until

HOLD_MS = 60000      # a backstop: the test releases the request itself


def held_request(lab, server, release):
    """GET /slow through HAProxy, routed to `server`, answered once `release` exists."""
    answer = {}

    def run():
        conn = http.client.HTTPConnection(LOCALHOST, lab.haproxy.frontend_port, timeout=HOLD_MS / 1000.0 + 30)
        try:
            conn.request("GET", "/slow?ms=%d&until=%s" % (HOLD_MS, release), headers={"X-Server": server})
            response = conn.getresponse()
            answer.update(status=response.status, body=response.read().decode(), ended=time.time())
        except OSError as error:
            answer.update(status=None, error=repr(error), ended=time.time())
        finally:
            conn.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answer


def test_a_request_held_by_an_old_worker_keeps_its_node_from_being_deployed(make_lab, tmp_path):
    lab = make_lab(instances=2, master_worker=True)
    release = str(tmp_path / "release")
    web1 = lab.nodes[0]
    thread, answer = held_request(lab, "web1", release)
    wait_until(lambda: int(lab.haproxy.server_stat("app", "web1")["scur"]) == 1, timeout=15,
               what="the held request open on web1")
    reload = lab.haproxy.reload("master-cli")
    assert int(lab.haproxy.server_stat("app", "web1")["scur"]) == 0    # the new worker does not see it
    v1_pid_stamp = os.stat(web1.pidfile).st_mtime

    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(run=playbook(
        lab, extra_vars={"lab_install_seconds": 0}, args=("--limit", "web1"))), daemon=True)
    runner.start()
    wait_until(lambda: admin_states(lab)["web1"] == "DRAIN" or not runner.is_alive(), timeout=120,
               what="the role draining web1")
    time.sleep(2.0)
    # Drained in the new worker, the session in the old one: still not deployed.
    assert runner.is_alive(), outcome.get("run")
    assert os.stat(web1.pidfile).st_mtime == v1_pid_stamp
    assert lab.versions()["web1"] == "v1"
    released = time.time()
    open(release, "w").close()
    runner.join(120)
    thread.join(30)

    run = outcome["run"]
    assert run.rc == 0, run
    assert answer.get("status") == 200 and '"version": "v1"' in answer["body"], answer
    # The new version was started only after the old worker's request ended.
    assert os.stat(web1.pidfile).st_mtime >= released, (os.stat(web1.pidfile).st_mtime, released)
    assert lab.versions()["web1"] == "v2"
    assert run.timings["web1"]["result"] == "done" and run.timings["web1"]["wait"] >= 2.0, run.timings
    assert reload.old_pids and reload.new_pid not in reload.old_pids
