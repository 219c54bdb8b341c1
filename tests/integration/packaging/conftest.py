# -*- coding: utf-8 -*-
"""The Galaxy tarball, built once per session for the packaging tests."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from helpers import REPO, VENV_BIN, ansible_env  # noqa: E402


def clean_env(collections_path, **extra):
    """An environment that knows only ``collections_path``: the repository's
    collections path (exported by the Makefile) and PYTHONPATH are left out, so
    nothing can come from the checkout by accident."""
    env = ansible_env(dict(ANSIBLE_COLLECTIONS_PATH=str(collections_path), **extra))
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(name="clean_env", scope="session")
def clean_env_fixture():
    return clean_env


@pytest.fixture(scope="session")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path",
                           str(out), REPO], capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = [p for p in os.listdir(str(out)) if p.endswith(".tar.gz")]
    assert len(built) == 1, built
    return os.path.join(str(out), built[0])


@pytest.fixture(scope="session")
def installed(tarball, tmp_path_factory):
    """The tarball installed into a clean collections path (the Makefile's
    ANSIBLE_COLLECTIONS_PATH already holds gentle.lb 0.1.0 through the
    repository link: with it, ansible-galaxy says "Nothing to do")."""
    path = tmp_path_factory.mktemp("collections")
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", tarball,
                           "-p", str(path)], capture_output=True, text=True, env=clean_env(path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = path / "ansible_collections" / "gentle" / "lb"
    assert (root / "MANIFEST.json").exists(), proc.stdout + proc.stderr
    assert not root.is_symlink()
    return path
