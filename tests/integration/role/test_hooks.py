# -*- coding: utf-8 -*-
"""Hooks run in order, each where it belongs (before_drain with the node in
rotation, after_drain and before_restore with it drained, after_restore with
it back); the deploy step given as a role; the soak time between batches."""

import os

from conftest import REPO, admin_states, assert_no_failures, check_timeline, playbook

HOOK = """---
- name: Ask HAProxy about this node
  gentle.lb.haproxy_member_info:
    socket: "{{{{ hostvars['lb1'].lab_haproxy_socket }}}}"
    backend: app
    server: "{{{{ inventory_hostname }}}}"
  delegate_to: lb1
  register: hook_view

- name: Write down the hook and the node's state
  ansible.builtin.lineinfile:
    path: {log}
    line: "{{{{ inventory_hostname }}}} {name} {{{{ hook_view.members[0].state }}}}"
    create: true
    mode: "0644"
  delegate_to: lb1
  throttle: 1
"""

ROLE_TASKS = """---
- name: Deploy through the lab's tasks
  ansible.builtin.include_tasks: {deploy}
"""


def test_hooks_role_deploy_and_soak(make_lab, tmp_path):
    lab = make_lab(instances=2)
    log = tmp_path / "hooks.log"
    extra = {"rolling_deploy_tasks_file": "", "rolling_deploy_role": "lab_deploy",
             "rolling_deploy_soak_seconds": 1}
    for name in ("before_drain", "after_drain", "before_restore", "after_restore"):
        path = tmp_path / (name + ".yml")
        path.write_text(HOOK.format(log=log, name=name))
        extra["rolling_deploy_%s_tasks_file" % name] = str(path)
    tasks = tmp_path / "roles" / "lab_deploy" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text(ROLE_TASKS.format(deploy=os.path.join(REPO, "lab", "demo", "deploy.yml")))

    lab.start_load()
    run = playbook(lab, extra_vars=extra, env={"ANSIBLE_ROLES_PATH": str(tmp_path / "roles")})
    load = lab.stop_load()

    assert run.rc == 0, run
    assert_no_failures(load)
    assert lab.versions() == {"web1": "v2", "web2": "v2"}
    assert admin_states(lab) == {"web1": "READY", "web2": "READY"}
    assert log.read_text().splitlines() == [
        "web1 before_drain present", "web1 after_drain drained", "web1 before_restore drained",
        "web1 after_restore present",
        "web2 before_drain present", "web2 after_drain drained", "web2 before_restore drained",
        "web2 after_restore present"]
    assert "Pausing for 1 seconds" in run.output
    phases = check_timeline(run, {"web1": 1, "web2": 2})
    for mine in phases.values():
        assert [p["phase"] for p in mine] == ["drain", "deploy", "health", "restore", "soak"], mine
        assert mine[-1]["seconds"] >= 1, mine
