# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/rolling_deploy.yml's ``serial`` takes rolling_deploy_serial in
every form an operator gives it: a plain ``-e k=v`` (what an AWX survey text
field amounts to), a JSON ``-e`` and YAML.  Real ansible-playbook runs of a
play with the ready playbook's own ``serial`` expression over six local
hosts; the batches are read from what ansible-playbook reports."""

import json
import os
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import REPO, VENV_BIN, ansible_env  # noqa: E402

with open(os.path.join(REPO, "playbooks", "rolling_deploy.yml")) as _handle:
    SERIAL = yaml.safe_load(_handle)[0]["serial"]


@pytest.fixture(scope="module")
def play(tmp_path_factory):
    where = tmp_path_factory.mktemp("serial")
    (where / "inventory").write_text("[app]\nh[1:6] ansible_connection=local\n")
    (where / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "app", "gather_facts": False, "serial": SERIAL,
        "tasks": [{"name": "batch", "ansible.builtin.debug": {"msg": "BATCH {{ ansible_play_batch | to_json }}"},
                   "run_once": True}]}]))
    return where


def batches(play, *extra_vars):
    command = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(play / "inventory"), str(play / "play.yml")]
    for extra in extra_vars:
        command += ["-e", extra]
    proc = subprocess.run(command, env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    found = [json.loads(line.split("BATCH ", 1)[1].rstrip('"').replace('\\"', '"'))
             for line in proc.stdout.splitlines() if '"msg": "BATCH ' in line]
    return proc, found


@pytest.mark.parametrize("given", ['rolling_deploy_serial=[1,"50%"]', "rolling_deploy_serial=1,50%",
                                   '{"rolling_deploy_serial": [1, "50%"]}', "@serial.yml"])
def test_a_canary_then_half_in_every_form(play, given):
    (play / "serial.yml").write_text("rolling_deploy_serial: [1, '50%']\n")
    if given.startswith("@"):
        given = "@" + str(play / "serial.yml")
    proc, found = batches(play, given)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert found == [["h1"], ["h2", "h3", "h4"], ["h5", "h6"]], proc.stdout


def test_a_survey_answer_and_the_default(play):
    proc, found = batches(play, "rolling_deploy_serial=2")
    assert proc.returncode == 0 and found == [["h1", "h2"], ["h3", "h4"], ["h5", "h6"]], proc.stdout
    proc, found = batches(play)
    assert proc.returncode == 0 and [len(batch) for batch in found] == [1] * 6, proc.stdout


def test_a_wrong_form_fails_with_the_forms_named(play):
    proc, found = batches(play, "rolling_deploy_serial=1,ten")
    assert proc.returncode != 0 and not found
    output = proc.stdout + proc.stderr
    assert "rolling_deploy_serial" in output and "'ten' is not a batch size" in output, output
    assert "Traceback" not in output and "probably a bug" not in output, output
