# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input and faults on the real director: one clear line, nothing changed."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from helpers import run_module  # tests/integration, put on sys.path by conftest.py

TABLE = """
-A -t 10.0.0.100:80 -s wlc
-a -t 10.0.0.100:80 -r 10.0.0.1:80 -m -w 5 -x 100 -y 50
-a -t 10.0.0.100:80 -r 10.0.0.2:80 -g -w 1
"""
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.parametrize("args, message", [
    (dict(address="10.0.0.1", state="drained", virtual_service="tcp:10.0.0.200:80"),
     "virtual service tcp:10.0.0.200:80: not defined on this director (ipvsadm -Ln does not list it); check "
     "protocol, address and port, or create the service first"),
    (dict(address="10.0.0.77", state="drained"),
     "real server 10.0.0.77: not found in any virtual service (searched tcp:10.0.0.100:80); check the name or "
     "address, or name the virtual service it belongs to"),
    (dict(address="10.0.0.300", state="drained"), "address 10.0.0.300: not an IP address"),
    (dict(address="10.0.0.1", port=70000, state="drained"), "port 70000: out of range; give 0-65535"),
    (dict(address="10.0.0.1", state="drained", virtual_service="tcp:10.0.0.100"),
     "virtual_service tcp:10.0.0.100: no port"),
    (dict(address="10.0.0.1", state="present", weight=70000),
     "weight 70000: out of range; IPVS weights are 0-65535"),
    (dict(address="10.0.0.1", state="present", weight=0), "weight 0: weight 0 is the drained state"),
    (dict(address="10.0.0.1", state="drained", on_timeout="force"),
     "on_timeout force: IPVS cannot end the connections of a real server it keeps"),
    (dict(address="10.0.0.9", state="present", virtual_service="tcp:10.0.0.100:80", upper_threshold=10,
          lower_threshold=20), "lower_threshold 20: above upper_threshold 10"),
    (dict(address="10.0.0.9", port=8080, state="present", virtual_service="tcp:10.0.0.100:80"),
     "port 8080: with forwarding route a real server receives the virtual service's own port (80)"),
])
def test_bad_input_fails_with_one_line_and_changes_nothing(director, args, message):
    director.restore(TABLE)
    start = director.snapshot()
    result = director.member(args)
    assert result.failed, result
    assert message in result["msg"]
    assert "\n" not in result["msg"]
    assert result["changed"] is False
    assert director.snapshot() == start
    assert not os.path.exists(director.state_file)


def test_ipvsadm_not_installed(director):
    director.restore(TABLE)
    result = director.member(dict(address="10.0.0.1", state="drained"), env={"PATH": "/usr/bin:/bin"})
    assert result.failed
    assert result["msg"] == ("ipvsadm: not installed on this director (not found in PATH=/usr/bin:/bin); install "
                             "the ipvsadm package (apt-get install ipvsadm / dnf install ipvsadm) or put it in PATH")
    info = run_module("ipvs_member_info", {}, env={"PATH": "/usr/bin:/bin"})
    assert info.failed and info["msg"].startswith("ipvsadm: not installed on this director")


def test_not_root(director):
    """As nobody (setpriv), with the system python: the venv's python lives under /root.
    The argument files live on the guest's /run (pytest's tmp dirs are 0700)."""
    director.restore(TABLE)
    start = director.snapshot()
    tmp_path = pathlib.Path(tempfile.mkdtemp(dir="/run"))
    try:
        results = as_nobody(tmp_path)
    finally:
        shutil.rmtree(str(tmp_path))
    for result in results:
        assert result["failed"] is True
        assert result["msg"] == ("ipvsadm: not allowed to use IPVS (Can't initialize ipvs: Permission denied (you "
                                 "must be root)); run the task as root (become: true) on the director")
    assert director.snapshot() == start


def as_nobody(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    site = [p for p in sys.path if p.endswith("site-packages") and "/.venv/" in p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.environ["PYTHONPATH"]] + site))
    results = []
    member_args = dict(address="10.0.0.1", state="drained", state_file=str(tmp_path / "w.json"))
    for module, args in (("ipvs_member", member_args), ("ipvs_member_info", dict())):
        args_file = tmp_path / (module + ".json")
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        args_file.chmod(0o644)
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYSTEM_PYTHON, "-m",
                               "ansible_collections.gentle.lb.plugins.modules." + module, str(args_file)],
                              capture_output=True, text=True, env=env, timeout=120, check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        results.append(json.loads(proc.stdout))
    return results


def test_state_file_not_writable_leaves_the_table_alone(director, tmp_path):
    director.restore(TABLE)
    start = director.snapshot()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    result = director.member(dict(address="10.0.0.1", state="drained", state_file=str(blocker / "w.json")))
    # Read with the table (the remembered weights are part of what planning needs).
    assert result.failed and result["msg"] == ("state_file %s: cannot be read (Not a directory); fix the path or set "
                                               "state_file" % (blocker / "w.json"))
    assert result["error_type"] == "CommandError"
    assert director.snapshot() == start
