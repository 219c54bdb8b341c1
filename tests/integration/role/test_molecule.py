# -*- coding: utf-8 -*-
"""The role's molecule scenario (roles/rolling_deploy/molecule/default):
default driver, local connection, no containers; prepare starts the rolling
lab, converge rolls it, idempotence reruns it (nothing changes), verify
checks versions, HAProxy's view and the load generator, cleanup stops the lab."""

import os
import shutil
import subprocess
import tempfile

from conftest import REPO

from helpers import ansible_env

ROLE = os.path.join(REPO, "roles", "rolling_deploy")


def test_molecule_default_scenario():
    # Molecule's state and the lab's files (short: HAProxy's unix sockets live there).
    ephemeral = tempfile.mkdtemp(prefix="mol-")
    env = ansible_env({"NO_COLOR": "1", "MOLECULE_EPHEMERAL_DIRECTORY": ephemeral})
    try:
        proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "molecule"), "test"], cwd=ROLE, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
    finally:
        shutil.rmtree(ephemeral, ignore_errors=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    for action in ("prepare", "converge", "idempotence", "verify", "cleanup"):
        assert "default > %s: Executed: Successful" % action in output, output[-4000:]
