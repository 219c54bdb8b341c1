# -*- coding: utf-8 -*-
"""Lint for gentle.lb.rolling_deploy's interface (as prometheus-community's
lint_arguments_spec.sh does for its roles, plus a little more):

* the options of meta/argument_specs.yml (all entry points together) are
  exactly the variables of defaults/main.yml, with the same defaults;
* every entry point has a task file, and every public variable the tasks
  use is declared;
* every binding key the role hands to a member module is an option of that
  module (ansible-doc), so a renamed module option cannot go unnoticed.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "roles", "rolling_deploy")
COLLECTIONS = os.path.join(REPO, ".cache", "collections")

# Public names that are not inputs: the fact the role publishes, and the
# variables of the ready playbooks.
NOT_INPUTS = {"rolling_deploy_timings", "rolling_deploy_hosts", "rolling_deploy_serial",
              "rolling_deploy_member_action"}


def load(*parts):
    with open(os.path.join(ROLE, *parts)) as handle:
        return yaml.safe_load(handle)


SPECS = load("meta", "argument_specs.yml")["argument_specs"]
DEFAULTS = load("defaults", "main.yml")


def all_options():
    options = {}
    for entry in SPECS.values():
        options.update(entry.get("options", {}))
    return options


def test_entry_points():
    assert sorted(SPECS) == ["drain", "main", "restore"]
    for entry in SPECS:
        assert os.path.exists(os.path.join(ROLE, "tasks", entry + ".yml")), entry
        assert SPECS[entry].get("short_description"), entry


def test_argument_specs_keys_equal_defaults_keys():
    options = all_options()
    missing_in_defaults = sorted(set(options) - set(DEFAULTS))
    missing_in_specs = sorted(set(DEFAULTS) - set(options))
    assert not missing_in_defaults, "in meta/argument_specs.yml, not in defaults/main.yml: %s" % missing_in_defaults
    assert not missing_in_specs, "in defaults/main.yml, not in meta/argument_specs.yml: %s" % missing_in_specs


def test_argument_specs_defaults_equal_defaults_values():
    for name, spec in all_options().items():
        assert "default" in spec, "%s: no default in meta/argument_specs.yml" % name
        assert spec["default"] == DEFAULTS[name], "%s: %r in argument_specs, %r in defaults" % (
            name, spec["default"], DEFAULTS[name])
        assert spec.get("description"), name
        assert name.startswith("rolling_deploy_"), name


def test_entry_points_share_one_definition_per_option():
    """An option documented in several entry points is documented the same way."""
    seen = {}
    for entry, spec in SPECS.items():
        for name, option in spec.get("options", {}).items():
            if name in seen:
                assert option == seen[name], "%s differs between entry points" % name
            seen[name] = option


def test_every_public_variable_the_tasks_use_is_declared():
    used = set()
    for folder in ("tasks", "vars"):
        for name in os.listdir(os.path.join(ROLE, folder)):
            with open(os.path.join(ROLE, folder, name)) as handle:
                used.update(re.findall(r"(?<![_\w])rolling_deploy_[a-z_]+", handle.read()))
    undeclared = sorted(used - set(DEFAULTS) - NOT_INPUTS)
    assert not undeclared, "used in tasks/ or vars/ but not in defaults/main.yml: %s" % undeclared


def test_internal_names_carry_the_role_prefix():
    for folder in ("tasks", "vars"):
        for name in os.listdir(os.path.join(ROLE, folder)):
            with open(os.path.join(ROLE, folder, name)) as handle:
                text = handle.read()
            for var in re.findall(r"^\s+register:\s+(\S+)", text, re.M):
                assert var.startswith("__rolling_deploy_"), (name, var)
            for var in re.findall(r"^\s*(_\w+):", text, re.M):
                # set_fact and vars/main.yml names; task-level helper vars
                # (vars: on one task, e.g. _results) are local to that task.
                assert var.startswith("_rolling_deploy_") or folder == "tasks", (name, var)


MODULES = {"haproxy": "haproxy_member", "ipvs": "ipvs_member", "f5": "f5_pool_member"}


def module_options(module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1")
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    proc = subprocess.run([ansible_doc, "--json", "gentle.lb." + module], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        pytest.fail("ansible-doc gentle.lb.%s failed: %s" % (module, proc.stderr[-1000:]))
    return set(json.loads(proc.stdout)["gentle.lb." + module]["doc"]["options"])


@pytest.mark.parametrize("binding_type", sorted(MODULES))
def test_binding_keys_are_module_options(binding_type):
    tasks = load("tasks", "binding_%s.yml" % binding_type)
    task = tasks[0]
    args = task["gentle.lb." + MODULES[binding_type]]
    options = module_options(MODULES[binding_type])
    unknown = sorted(set(args) - options)
    assert not unknown, "binding_%s.yml passes %s, not options of %s" % (binding_type, unknown, MODULES[binding_type])
    # ...and every option of the module can be set from a binding (the role
    # sets state and wait itself).
    untouched = sorted(options - set(args))
    assert not untouched, "options of %s a binding cannot set: %s" % (MODULES[binding_type], untouched)
    # The keys the role accepts in a binding of this type (vars/main.yml; any
    # other key is refused before anything is done, so a typo such as
    # "bakend" cannot widen the scope of a drain to every backend).
    accepted = set(load("vars", "main.yml")["_rolling_deploy_binding_keys"][binding_type])
    assert accepted == (options - {"state", "wait"}) | {"type", "delegate_to", "label"}
