# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ad-hoc toggle through the real ``ansible`` command, with the collection
loaded the way users load it: the controller on the host (lab/uml/on-host),
the module on this director through the guest agent, as over SSH (the
controller's own start costs 4-12 s inside the guest, 1-2 s on the host)."""

import os

from helpers import REPO, run_adhoc  # tests/integration, put on sys.path by conftest.py

ON_HOST = [os.path.join(REPO, "lab", "uml", "on-host"), "--"]
# The director's Debian Python runs the module; its files go to the guest's tmpfs.
DIRECTOR = dict(host="director", connection="uml", via=ON_HOST,
                env={"ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3", "ANSIBLE_REMOTE_TMP": "/run/ansible-tmp"})

TABLE = """
-A -t 10.0.0.100:80 -s wlc
-a -t 10.0.0.100:80 -r 192.168.100.78:80 -i -w 4 --tun-type gre --tun-csum
-a -t 10.0.0.100:80 -r 192.168.100.79:80 -g -w 1
-A -f 7 -s rr
-a -f 7 -r 192.168.100.78:0 -g -w 2 -x 30 -y 10
-a -f 7 -r 192.168.100.79:0 -g -w 1
"""


def test_adhoc_drain_and_check_mode(director):
    director.restore(TABLE)
    start = director.snapshot()
    common = dict(address="192.168.100.78", state_file=director.state_file)

    drained = run_adhoc("ipvs_member", dict(common, state="drained"), **DIRECTOR)
    assert drained.rc == 0, drained.stderr
    assert drained["changed"] is True
    assert sorted(m["container"] for m in drained["members"]) == ["fwmark:7", "tcp:10.0.0.100:80"]
    assert all(w == 0 for w in director.weights("192.168.100.78").values())

    # --check --diff: the plan (the remembered weights) without writing it.
    planned = run_adhoc("ipvs_member", dict(common, state="present"), check=True, diff=True, **DIRECTOR)
    assert planned.rc == 0 and planned["changed"] is True
    assert sorted((m["container"], m["state"], m["weight"]) for m in planned["members"]) == [
        ("fwmark:7", "present", 2), ("tcp:10.0.0.100:80", "present", 4)]
    assert all(w == 0 for w in director.weights("192.168.100.78").values())

    info = director.info(virtual_service="FWM 7")
    assert not info.failed
    assert [(m["name"], m["state"], m["upper_threshold"], m["lower_threshold"]) for m in info["members"]][0] == \
        ("192.168.100.78:0", "drained", 30, 10)

    restored = director.member(common, state="present")
    assert restored["changed"] is True
    assert director.snapshot() == start
