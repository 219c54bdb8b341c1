# -*- coding: utf-8 -*-
"""The execution environment path, as far as it goes without a container engine:

* ``ansible-builder create`` on docs/execution-environment.yml (with the built
  tarball next to it, as the file says) produces a build context that holds
  the tarball, the requirements and the bigsuds step;
* its Containerfile installs what is tested: a base-image Python that the
  tested ansible-core supports, that ansible-core line (demo-requirements.txt,
  the .venv's), and an SSH client for the hosts AWX reaches;
* the context's galaxy stage, replayed here (``ansible-galaxy collection
  install -r requirements.yml`` in ``_build/``, the Containerfile's working
  directory), installs the collection;
* the builder stage's introspection (``_build/scripts/introspect.py``, the
  script the image build runs) finds meta/execution-environment.yml in the
  installed collection: requests from meta/ee-requirements.txt, and no system
  package (ipvsadm is a need of the directors, not of the EE).
"""

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from packaging.specifiers import SpecifierSet

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


def containerfile_args(ctx):
    return dict(re.findall(r'^ARG (\w+)="([^"]*)"$', (ctx / "Containerfile").read_text(), re.M))


def ansible_core_under_test():
    """(version, Requires-Python) of the ansible-core the tests run, from .venv."""
    out = subprocess.run([os.path.join(VENV_BIN, "python"), "-c",
                          "import json, importlib.metadata as m; d = m.distribution('ansible-core'); "
                          "print(json.dumps([d.version, d.metadata['Requires-Python']]))"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_containerfile_builds_what_is_tested(context):
    ctx, _output = context
    args = containerfile_args(ctx)
    version, requires_python = ansible_core_under_test()

    # The base image's Python: installed from the image's packages, and one the
    # tested ansible-core runs on (2.21 needs >= 3.12; CentOS Stream 9's python3 is 3.9).
    match = re.fullmatch(r"/usr/bin/python(3\.\d+)", args["PYCMD"])
    assert match, args["PYCMD"]
    assert args["PYPKG"].split()[0] == "python" + match.group(1)
    assert match.group(1) in SpecifierSet(requires_python), (match.group(1), requires_python)

    # ansible-core: the line the tests pin, which holds the version they ran.
    with open(os.path.join(REPO, "demo-requirements.txt")) as handle:
        pinned = [line.strip() for line in handle if line.startswith("ansible-core")]
    refs = args["ANSIBLE_INSTALL_REFS"].split()
    assert [ref for ref in refs if ref.startswith("ansible-core")] == pinned
    assert version in SpecifierSet(pinned[0][len("ansible-core"):]), (version, pinned)
    assert "ansible-runner" in refs

    # An SSH client, installed from bindep in the final stage.
    bindep = (ctx / "_build" / "bindep.txt").read_text().split("\n")
    assert "openssh-clients [platform:rpm]" in bindep
    assert "install-from-bindep" in (ctx / "Containerfile").read_text()


def test_requires_ansible_is_what_ci_tests():
    """meta/runtime.yml claims no ansible-core older than the one the tests run."""
    with open(os.path.join(REPO, "meta", "runtime.yml")) as handle:
        claim = yaml.safe_load(handle)["requires_ansible"]
    version, _requires_python = ansible_core_under_test()
    minor = ".".join(version.split(".")[:2])
    assert claim == ">=%s.0" % minor, "CI tests ansible-core %s only; requires_ansible says %s" % (version, claim)


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
                           "--user-pip", str(build / "requirements.txt"), "--user-bindep", str(build / "bindep.txt"),
                           "--write-pip", str(pip_out), "--write-bindep", str(bindep_out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = yaml.safe_load(proc.stdout)
    assert "requests>=2.28.0  # from collection gentle.lb" in found["python"]
    # The collection itself asks for no system package (ipvsadm belongs on the
    # directors); the EE file's SSH client is all the final stage installs.
    assert found["system"] == ["openssh-clients [platform:rpm]  # from collection user"], found["system"]
    assert bindep_out.read_text().split("\n")[0] == "openssh-clients [platform:rpm]  # from collection user"


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
