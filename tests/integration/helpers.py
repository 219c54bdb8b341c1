# -*- coding: utf-8 -*-
"""Run gentle.lb modules for integration tests.

``run_module`` executes the module file directly with its arguments, the way
Ansible's own module runner hands them over (fast: no controller start-up);
``run_adhoc`` and ``run_playbook`` go through the real ``ansible`` and
``ansible-playbook`` commands, so the collection is loaded exactly as users load it.
Both talk to real load balancers started by the tests.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
VENV_BIN = os.path.join(REPO, ".venv", "bin")


def ensure_collection_link():
    """``ansible_collections/gentle/lb`` -> the repository root."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "gentle", "lb")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    return COLLECTIONS


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=ensure_collection_link(),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
    )
    env.update(extra or {})
    return env


class ModuleResult(dict):
    """The module's JSON result, plus rc and wall time of the call."""

    @property
    def failed(self):
        return bool(self.get("failed"))


def run_module(name, args, check=False, diff=False, env=None, timeout=180, python=None):
    """Execute plugins/modules/<name>.py with ``args``; return its JSON result.
    ``env`` adds environment variables (for the env fallbacks)."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check
    payload["_ansible_diff"] = diff
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
        args_file = handle.name
    run_env = dict(os.environ)
    run_env["PYTHONPATH"] = ensure_collection_link()
    run_env.update(env or {})
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [python or sys.executable, "-m", "ansible_collections.gentle.lb.plugins.modules." + name, args_file],
            capture_output=True, text=True, timeout=timeout, env=run_env, cwd=REPO, check=False)
    finally:
        os.unlink(args_file)
    elapsed = time.monotonic() - started
    try:
        result = ModuleResult(json.loads(proc.stdout))
    except ValueError:
        raise AssertionError("module %s printed no JSON (rc=%s)\nstdout:%s\nstderr:%s"
                             % (name, proc.returncode, proc.stdout, proc.stderr))
    result.rc = proc.returncode
    result.elapsed = elapsed
    result.stderr = proc.stderr
    return result


def run_adhoc(module, args, check=False, diff=False, env=None, timeout=180, host="localhost",
              connection="local", via=()):
    """``ansible localhost -m gentle.lb.<module> -a <json>``: the ad-hoc toggle.
    ``via`` prefixes the command (lab/uml/on-host: the controller on the host,
    connection "uml" into the guest)."""
    cmd = list(via) + [os.path.join(VENV_BIN, "ansible"), host, "-i", host + ",", "-c", connection,
                       "-m", "gentle.lb." + module, "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    # ansible-core 2.21 has no 'json' stdout callback (it lives in ansible.posix now);
    # the built-in 'minimal' one prints "HOST | STATUS => {json}" (diff shown apart).
    run_env = ansible_env(dict(env or {}, ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal"))
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=run_env, cwd=REPO, check=False)
    elapsed = time.monotonic() - started
    marker = re.search(r"^%s \| ([A-Z]+!?) => \{" % re.escape(host), proc.stdout, re.MULTILINE)
    try:
        data, _end = json.JSONDecoder().raw_decode(proc.stdout, marker.end() - 1)
        result = ModuleResult(data)
    except (ValueError, AttributeError):
        raise AssertionError("ansible %s gave no JSON result (rc=%s)\nstdout:%s\nstderr:%s"
                             % (module, proc.returncode, proc.stdout, proc.stderr))
    if marker.group(1) in ("FAILED!", "UNREACHABLE!"):
        result["failed"] = True
    result.rc = proc.returncode
    result.elapsed = elapsed
    result.stderr = proc.stderr
    return result


def run_playbook(playbook, extra_vars=None, env=None, timeout=600, inventory="localhost,", args=()):
    """``ansible-playbook``; returns the CompletedProcess (stdout+stderr text)."""
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=ansible_env(env), cwd=REPO, check=False)


# Headless Chromium as a reader's browser, and nothing more: no sandbox (tests
# may run as root), no GPU, no network of its own, a throwaway profile.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_dump_dom(url, profile, args=(), timeout=120):
    """The page's DOM after Debian's headless Chromium loaded it (--dump-dom),
    as text: what the browser made of the page, its scripts run."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is missing (make setup installs it)"
    proc = subprocess.run([chromium] + CHROMIUM_FLAGS + ["--user-data-dir=%s" % profile] + list(args)
                          + ["--dump-dom", url], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout
