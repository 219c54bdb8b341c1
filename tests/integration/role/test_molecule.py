# -*- coding: utf-8 -*-
"""The role's molecule scenario (roles/rolling_deploy/molecule/default):
default driver, local connection, no containers; prepare starts the rolling
lab, converge rolls it, idempotence reruns it (nothing changes), verify
checks versions, HAProxy's view and the load generator, cleanup stops the lab."""


def test_molecule_default_scenario(background):
    """molecule test, started at collection (conftest.py)."""
    returncode, output, _work = background("molecule")
    assert returncode == 0, output[-8000:]
    for action in ("prepare", "converge", "idempotence", "verify", "cleanup"):
        assert "default > %s: Executed: Successful" % action in output, output[-4000:]
