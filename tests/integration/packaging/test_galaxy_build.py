# -*- coding: utf-8 -*-
"""The collection as Galaxy ships it: `ansible-galaxy collection build` leaves out the
lab, benchmarks, tests and caches, and the installed tarball works on its own
(an ad-hoc toggle against a real HAProxy, from a clean collections path)."""

import json
import os
import re
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import REPO, VENV_BIN  # noqa: E402

sys.path.insert(0, REPO)
from lab.haproxy_lab import HAProxyLab  # noqa: E402

# What a user installs: nothing else may sit at the top of the tarball (a stray
# directory in the work tree -- .ansible/ from ansible-lint, .benchmarks/,
# a release tarball -- ships unless galaxy.yml's build_ignore names it).
TOP_LEVEL = {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.rst", "CHANGELOG.md", "LICENSE", "COPYING",
             ".ansible-lint", "meta", "plugins", "roles", "playbooks", "docs", "changelogs"}
NOT_SHIPPED = ("lab/", "bench/", "tests/", "tools/", ".cache/", ".venv", ".ci/", "Makefile", ".git/",
               "test-requirements.txt", "demo-requirements.txt", "changelogs/fragments/")
MUST_SHIP = ("MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml",
             "meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt",
             "plugins/module_utils/member.py", "plugins/module_utils/specs.py",
             "plugins/modules/haproxy_member.py", "plugins/modules/haproxy_member_info.py",
             "plugins/doc_fragments/waiting.py", "plugins/doc_fragments/action_group.py",
             "roles/rolling_deploy/tasks/main.yml", "roles/rolling_deploy/meta/argument_specs.yml",
             "playbooks/rolling_deploy.yml", "docs/docsite/links.yml",
             "docs/awx/credential_type_haproxy_stats.yml", "docs/awx/credential_type_haproxy_socket.yml",
             "docs/awx/credential_type_f5.yml")


def test_tarball_holds_the_collection_and_no_clutter(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    stray = sorted(set(name.split("/")[0] for name in names) - TOP_LEVEL)
    assert not stray, "not collection content, add to build_ignore in galaxy.yml: %s" % stray
    for name in names:
        assert not name.startswith(NOT_SHIPPED), "%s should be in build_ignore" % name
        assert "__pycache__" not in name and not name.endswith((".pyc", ".tar.gz")), name
    for name in MUST_SHIP:
        assert name in names
    assert manifest["collection_info"]["namespace"] == "gentle"
    assert manifest["collection_info"]["name"] == "lb"


def test_installed_tarball_runs_an_adhoc_toggle(installed, clean_env, tmp_path):
    env = clean_env(installed, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal")

    # ansible sees one gentle.lb: the installed copy, not the repository.
    listing = subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "list", "gentle.lb",
                              "--format", "json"], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                             check=True)
    assert list(json.loads(listing.stdout)) == [str(installed / "ansible_collections")]

    with HAProxyLab(version="2.6") as lab:
        lab.wait_servers_up()
        args = json.dumps(dict(socket=lab.admin_socket, backend="app", server="web2", state="drained",
                               wait=False))
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local",
                               "-m", "gentle.lb.haproxy_member", "-a", args],
                              capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        match = re.search(r"^localhost \| CHANGED => \{", proc.stdout, re.M)
        assert match, proc.stdout + proc.stderr
        result, _end = json.JSONDecoder().raw_decode(proc.stdout, match.end() - 1)
        assert [(m["container"], m["name"], m["state"]) for m in result["members"]] == [("app", "web2", "drained")]
        state = lab.send("show servers state app")
        row = [line.split() for line in state.splitlines() if " web2 " in line][0]
        assert int(row[6]) & 0x08, "web2 should carry the DRAIN admin bit"


def test_installed_collection_runs_its_playbook_by_name(installed, clean_env, tmp_path):
    """`ansible-playbook gentle.lb.rolling_deploy`, as the README says: the
    installed collection's playbooks/rolling_deploy.yml rolls a real HAProxy
    lab (two instances, no install pause) from v1 to v2."""
    sys.path.insert(0, REPO)
    from lab.rolling_lab import RollingLab

    with RollingLab(instances=2) as lab:
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", lab.inventory,
                               "gentle.lb.rolling_deploy", "-e", "lab_install_seconds=0"],
                              capture_output=True, text=True, env=clean_env(installed), cwd=str(tmp_path),
                              timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        # The role's tasks came from the installed copy, not from the repository.
        assert str(installed / "ansible_collections" / "gentle" / "lb" / "roles" / "rolling_deploy") in proc.stdout
        assert lab.versions() == {"web1": "v2", "web2": "v2"}
