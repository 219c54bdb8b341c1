# -*- coding: utf-8 -*-
"""Every module documents the action groups meta/runtime.yml puts it in
(attribute ``action_group`` through the gentle.lb.action_group doc fragment),
and every module is in the collection-wide group ``lb``.  The documentation is
read through ``ansible-doc --json``: the fragments merged exactly as the docs
site and ``ansible-doc`` show them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

import ansible_collections

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))
                 if not p.endswith("__init__.py"))


def runtime_groups():
    with open(os.path.join(REPO, "meta", "runtime.yml")) as handle:
        return yaml.safe_load(handle)["action_groups"]


def groups_of(module):
    """{gentle.lb.<group>} that list ``module`` in meta/runtime.yml."""
    return set("gentle.lb." + name for name, members in runtime_groups().items() if module in members)


@pytest.fixture(scope="module")
def docs():
    collections = os.path.dirname(list(ansible_collections.__path__)[0])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1")
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    proc = subprocess.run([ansible_doc, "--json", "-t", "module"] + ["gentle.lb." + m for m in MODULES],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict((name.split(".")[-1], entry["doc"]) for name, entry in json.loads(proc.stdout).items())


def test_every_module_is_in_the_lb_group():
    groups = runtime_groups()
    assert sorted(groups["lb"]) == MODULES
    for name, members in groups.items():
        assert set(members) <= set(MODULES), "group %s names a module that does not exist" % name
    # One per-balancer group per module, besides lb; gentle.lb.member runs the
    # module of any balancer, whose groups then apply.
    for module in MODULES:
        expected = 1 if module == "member" else 2
        assert len(groups_of(module)) == expected, (module, groups_of(module))


@pytest.mark.parametrize("module", MODULES)
def test_action_group_attribute_matches_runtime(docs, module):
    attribute = docs[module].get("attributes", {}).get("action_group")
    assert attribute, "%s documents no action_group attribute (doc fragment gentle.lb.action_group.<LB>)" % module
    assert attribute["support"] == "full"
    assert set(attribute["membership"]) == groups_of(module)
    for group in attribute["membership"]:
        assert "C(group/%s)" % group in attribute["description"], (module, group)


@pytest.mark.parametrize("module", MODULES)
def test_examples_use_only_groups_the_module_is_in(module):
    """A module_defaults block in a module's documentation names a group that
    really holds the module (Ansible silently skips defaults of an existing
    group that does not hold the module)."""
    path = os.path.join(REPO, "plugins", "modules", module + ".py")
    with open(path) as handle:
        source = handle.read()
    named = set(re.findall(r"group/(gentle\.lb\.\w+)", source))
    assert named <= groups_of(module), (module, named - groups_of(module))
