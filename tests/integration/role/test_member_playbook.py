# -*- coding: utf-8 -*-
"""playbooks/member.yml: drain one node everywhere it is bound, then restore it."""

import http.client
import threading
import time

from conftest import MEMBER_PLAYBOOK, admin_states, playbook


class Held(threading.Thread):
    """A slow request (lab/app /slow) routed to one server through HAProxy."""

    def __init__(self, lab, server, ms):
        super(Held, self).__init__(daemon=True)
        self.lab, self.server, self.ms, self.status = lab, server, ms, None
        self.start()
        deadline = time.monotonic() + 5
        while lab.haproxy.server_stat("app", server)["scur"] == "0":
            assert time.monotonic() < deadline, "the slow request did not reach %s" % server
            time.sleep(0.02)

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.lab.haproxy.frontend_port, timeout=30)
        conn.request("GET", "/slow?ms=%d" % self.ms, headers={"X-Server": self.server})
        self.status = conn.getresponse().status
        conn.close()


def test_drain_then_restore_one_node(lab):
    held = Held(lab, "web3", 1500)                    # an open request on web3
    run = playbook(lab, MEMBER_PLAYBOOK, {"rolling_deploy_hosts": "web3", "rolling_deploy_member_action": "drain"})
    assert run.rc == 0, run
    assert held.status == 200                         # the drain waited for it
    assert admin_states(lab)["web3"] == "DRAIN"
    assert lab.haproxy.server_stat("app", "web3")["scur"] == "0"

    run = playbook(lab, MEMBER_PLAYBOOK, {"rolling_deploy_hosts": "web3", "rolling_deploy_member_action": "restore"})
    assert run.rc == 0, run
    assert admin_states(lab) == dict.fromkeys(["web1", "web2", "web3", "web4"], "READY")
    assert lab.states()["web3"] == "UP"


def test_drain_refused_by_the_floor_changes_nothing(lab):
    run = playbook(lab, MEMBER_PLAYBOOK, {"rolling_deploy_hosts": "web1", "rolling_deploy_member_action": "drain",
                                          "rolling_deploy_min_active": "100%"})
    assert run.rc != 0, run
    assert "below min_active=100%" in run.output, run
    assert admin_states(lab)["web1"] == "READY"


def test_missing_action_is_explained(lab):
    run = playbook(lab, MEMBER_PLAYBOOK, {"rolling_deploy_hosts": "web1"})
    assert run.rc != 0
    assert "set rolling_deploy_member_action to drain or" in run.output, run
