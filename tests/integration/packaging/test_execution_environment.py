# -*- coding: utf-8 -*-
"""The execution environment path, as far as it goes without a container engine:

* ``ansible-builder create`` on docs/execution-environment.yml (with the built
  tarball next to it, as the file says) produces a build context that holds
  the tarball, the requirements and the bigsuds step;
* the context's galaxy stage, replayed here (``ansible-galaxy collection
  install -r requirements.yml`` in ``_build/``, the Containerfile's working
  directory), installs the collection;
* the builder stage's introspection (``_build/scripts/introspect.py``, the
  script the image build runs) finds meta/execution-environment.yml in the
  installed collection: requests from meta/ee-requirements.txt, and no system
  package (ipvsadm is a need of the directors, not of the EE).
"""

import filecmp
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import REPO, VENV_BIN  # noqa: E402

EE_FILE = os.path.join(REPO, "docs", "execution-environment.yml")


@pytest.fixture(scope="module")
def context(tarball, tmp_path_factory):
    """(build context directory, the builder's output) for the docs example."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(EE_FILE, str(work / "execution-environment.yml"))
    shutil.copy(tarball, str(work / os.path.basename(tarball)))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-builder"), "create", "-f",
                           str(work / "execution-environment.yml"), "-c", str(work / "context"),
                           "--output-filename", "Containerfile"],
                          capture_output=True, text=True, cwd=str(work), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "context", proc.stdout + proc.stderr


def test_example_names_the_tarball_that_is_built(tarball):
    with open(EE_FILE) as handle:
        ee = yaml.safe_load(handle)
    name = os.path.basename(tarball)
    assert [f["src"] for f in ee["additional_build_files"]] == [name], \
        "docs/execution-environment.yml should name %s (galaxy.yml's version)" % name
    assert [c["name"] for c in ee["dependencies"]["galaxy"]["collections"]] == ["collections/" + name]


def test_builder_create_makes_a_complete_context(context, tarball):
    ctx, output = context
    assert "No matches" not in output, output            # every additional_build_files source was found
    build = ctx / "_build"
    assert filecmp.cmp(str(build / "collections" / os.path.basename(tarball)), tarball, shallow=False)
    with open(str(build / "requirements.yml")) as handle:
        requirements = yaml.safe_load(handle)
    for entry in requirements["collections"]:
        assert (build / entry["name"]).is_file(), "%s is not in the build context" % entry["name"]
    assert "requests>=2.28.0" in (build / "requirements.txt").read_text().split()
    containerfile = (ctx / "Containerfile").read_text()
    assert "COPY _build /build" in containerfile and "WORKDIR /build" in containerfile
    assert re.search(r"pip install --no-deps bigsuds && .* pip install suds-community six", containerfile)


def test_galaxy_and_introspection_stages_find_the_collection_requirements(context, tmp_path):
    ctx, _output = context
    build = ctx / "_build"
    installed = tmp_path / "usr_share_ansible_collections"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_GALAXY_DISABLE_GPG_VERIFY="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "-r",
                           "requirements.yml", "--collections-path", str(installed)],
                          capture_output=True, text=True, cwd=str(build), env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (installed / "ansible_collections" / "gentle" / "lb" / "meta" / "execution-environment.yml").is_file()

    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    proc = subprocess.run([sys.executable, str(build / "scripts" / "introspect.py"), "introspect", str(installed),
                           "--user-pip", str(build / "requirements.txt"),
                           "--write-pip", str(pip_out), "--write-bindep", str(bindep_out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = yaml.safe_load(proc.stdout)
    assert "requests>=2.28.0  # from collection gentle.lb" in found["python"]
    assert found["system"] == [], "the EE needs no system package (ipvsadm belongs on the directors)"
    assert not bindep_out.exists()


def test_ee_requirements_follow_the_certification_rules():
    """No ansible/ansible-core, no == pins, no upper bounds; bindep lists nothing."""
    def entries(name):
        with open(os.path.join(REPO, "meta", name)) as handle:
            return [line.split("#")[0].strip() for line in handle if line.split("#")[0].strip()]
    python = entries("ee-requirements.txt")
    assert python == ["requests>=2.28.0"]
    for entry in python:
        assert not re.match(r"ansible(-core)?\b", entry) and "==" not in entry and "<" not in entry
    assert entries("ee-bindep.txt") == []
