# -*- coding: utf-8 -*-
"""The collection as Galaxy ships it: `ansible-galaxy collection build` leaves out the
lab, benchmarks, tests and caches, and the installed tarball works on its own
(an ad-hoc toggle against a real HAProxy, from a clean collections path)."""

import json
import os
import subprocess
import sys
import tarfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import REPO, VENV_BIN, ansible_env  # noqa: E402

sys.path.insert(0, REPO)
from lab.haproxy_lab import HAProxyLab  # noqa: E402

NOT_SHIPPED = ("lab/", "bench/", "tests/", ".cache/", ".venv", ".ci/", "Makefile", ".git/",
               "test-requirements.txt", "changelogs/fragments/")
MUST_SHIP = ("MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml",
             "meta/execution-environment.yml", "meta/ee-requirements.txt",
             "plugins/module_utils/member.py", "plugins/modules/haproxy_member.py",
             "plugins/modules/haproxy_member_info.py", "plugins/doc_fragments/waiting.py")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path",
                    str(out), REPO], check=True, capture_output=True, text=True, cwd=REPO)
    built = [p for p in os.listdir(str(out)) if p.endswith(".tar.gz")]
    assert len(built) == 1
    return os.path.join(str(out), built[0])


def test_tarball_holds_the_collection_and_no_clutter(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    for name in names:
        assert not name.startswith(NOT_SHIPPED), "%s should be in build_ignore" % name
        assert "__pycache__" not in name
    for name in MUST_SHIP:
        assert name in names
    manifest = json.load(tarfile.open(tarball).extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["namespace"] == "gentle"
    assert manifest["collection_info"]["name"] == "lb"


def test_installed_tarball_runs_an_adhoc_toggle(tarball, tmp_path):
    install_dir = tmp_path / "collections"
    subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", tarball,
                    "-p", str(install_dir)], check=True, capture_output=True, text=True)
    assert (install_dir / "ansible_collections" / "gentle" / "lb" / "MANIFEST.json").exists()
    env = ansible_env(dict(ANSIBLE_COLLECTIONS_PATH=str(install_dir), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                           ANSIBLE_STDOUT_CALLBACK="json"))
    with HAProxyLab(version="2.6") as lab:
        lab.wait_servers_up()
        args = json.dumps(dict(socket=lab.admin_socket, backend="app", server="web2", state="drained"))
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local",
                               "-m", "gentle.lb.haproxy_member", "-a", args],
                              capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
        assert result["changed"] is True
        state = lab.send("show servers state app")
        row = [line.split() for line in state.splitlines() if " web2 " in line][0]
        assert int(row[6]) & 0x08, "web2 should carry the DRAIN admin bit"
