# -*- coding: utf-8 -*-
"""Lint for gentle.lb.rolling_deploy's interface (as prometheus-community's
lint_arguments_spec.sh does for its roles, plus a little more):

* the options of meta/argument_specs.yml (all entry points together) are
  exactly the variables of defaults/main.yml, with the same defaults;
* every entry point has a task file, and every public variable the tasks
  use is declared;
* every binding type of the role has a module behind gentle.lb.member, and
  the keys a binding accepts are that module's options (ansible-doc), so a
  renamed module option cannot go unnoticed.
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

# Public names that are not inputs: the facts and set_stats artifacts the
# role publishes, and the variables of the ready playbooks.
NOT_INPUTS = {"rolling_deploy_timings", "rolling_deploy_timeline", "rolling_deploy_play_timings",
              "rolling_deploy_play_timeline", "rolling_deploy_hosts", "rolling_deploy_serial",
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
                used.update(re.findall(r"(?<![_\w.])rolling_deploy_[a-z_]+", handle.read()))
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


def load_action_modules():
    """The type -> module table of gentle.lb.member (plugins/action/member.py),
    read without importing Ansible's action machinery."""
    path = os.path.join(REPO, "plugins", "action", "member.py")
    with open(path) as handle:
        text = handle.read()
    table = re.search(r"MODULES = \{(.*?)\n\}", text, re.S).group(1)
    return dict(re.findall(r'"(\w+)": "gentle\.lb\.(\w+)"', table))


TYPES = load("vars", "main.yml")["_rolling_deploy_types"]
MODULES = load_action_modules()
# Keys every binding takes; the first three are the role's own.
COMMON = {"type", "delegate_to", "label", "wait_timeout", "poll_interval", "drain_threshold", "on_timeout",
          "reassert", "min_active"}
ROLE_KEYS = {"type", "delegate_to", "label"}


def module_doc(module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1")
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    proc = subprocess.run([ansible_doc, "--json", "gentle.lb." + module], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        pytest.fail("ansible-doc gentle.lb.%s failed: %s" % (module, proc.stderr[-1000:]))
    return json.loads(proc.stdout)["gentle.lb." + module]["doc"]


def test_every_binding_type_has_a_module():
    assert sorted(TYPES) == sorted(MODULES)
    doc = module_doc("member")
    assert sorted(doc["options"]["type"]["choices"]) == sorted(MODULES)


@pytest.mark.parametrize("binding_type", sorted(TYPES))
def test_binding_keys_are_module_options(binding_type):
    """The keys the role accepts in a binding of this type (any other key is
    refused before anything is done, so a typo such as "bakend" cannot widen
    the scope of a drain to every backend) are exactly the options of its
    module, but state and wait, which the role sets."""
    spec = TYPES[binding_type]
    options = module_doc(MODULES[binding_type])["options"]
    aliases = set(a for option in options.values() for a in option.get("aliases", []))
    accepted = {key.split(".")[0] for key in spec["members"] + spec["options"]} | COMMON
    # Aliases only where the table names them (health_file's info, the key of
    # earlier versions); a member key under an alias would not be batched.
    assert accepted - ROLE_KEYS - aliases == set(options) - {"state", "wait"}, binding_type
    assert set(spec["required"]) <= set(spec["members"])
    for nested, keys in spec.get("nested", {}).items():
        option = next(o for name, o in options.items() if nested == name or nested in o.get("aliases", []))
        assert set(keys) == set(option["suboptions"]), (binding_type, nested)
        for member in spec["members"]:
            if member.startswith(nested + "."):
                assert member.split(".", 1)[1] in option["suboptions"]
