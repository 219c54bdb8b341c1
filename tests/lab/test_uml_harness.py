# -*- coding: utf-8 -*-
"""Smoke tests for lab/uml/run, the user-mode Linux harness with real IPVS.

Each test boots a guest (about 2 s each; the netns lab adds about 2 s).  Every
run gets TMPDIR set to the test's tmp_path, so the harness's run directory is
created there and the test can prove it was removed, and find any process
still carrying it on its command line.
"""

import os
import re
import shlex
import shutil
import subprocess
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(REPO, "lab", "uml", "run")
ON_HOST = os.path.join(REPO, "lab", "uml", "on-host")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
COLLECTIONS = os.path.join(REPO, ".cache", "collections")

pytestmark = [
    pytest.mark.skipif(
        shutil.which("linux.uml") is None and not os.access("/usr/bin/linux.uml", os.X_OK),
        reason="linux.uml not installed (Debian package user-mode-linux): no IPVS kernel to test in",
    ),
    pytest.mark.skipif(
        shutil.which("ipvsadm", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None,
        reason="ipvsadm not installed (Debian package ipvsadm)",
    ),
]


def uml(tmp_path, *args, timeout=180, env=None):
    """Run lab/uml/run with ARGS; return the CompletedProcess (text)."""
    run_env = dict(os.environ, TMPDIR=str(tmp_path))
    run_env.update(env or {})
    return subprocess.run(
        [RUN] + list(args), capture_output=True, text=True, timeout=timeout,
        env=run_env, cwd=str(tmp_path),
    )


def assert_cleaned_up(tmp_path):
    """No run directory, no kept log, no process of ours left."""
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith("uml-run-")]
    assert leftovers == [], "harness left %s in %s" % (leftovers, tmp_path)
    marker = str(tmp_path).encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        assert not (b"linux.uml" in cmdline and marker in cmdline), \
            "stray UML process %s: %r" % (pid, cmdline)


def active_conns(listing, rs):
    """ActiveConn of real server RS ("172.16.1.2:80") in an `ipvsadm -Ln` listing."""
    for line in listing.splitlines():
        fields = line.split()
        if fields[:2] == ["->", rs]:
            return int(fields[4])
    raise AssertionError("%s not in listing:\n%s" % (rs, listing))


@pytest.fixture(scope="module")
def empty_table_run(tmp_path_factory):
    """One `run -- ipvsadm -Ln`, timed: its result, and the wall time of a boot
    on this machine now (boot, setup, the command, power-off)."""
    tmp = tmp_path_factory.mktemp("boot")
    started = time.monotonic()
    res = uml(tmp, "--", "ipvsadm", "-Ln")
    return res, time.monotonic() - started, tmp


@pytest.fixture(scope="module")
def boot_seconds(empty_table_run):
    res, seconds, unused = empty_table_run
    assert res.returncode == 0, res.stderr
    return seconds


def test_ipvsadm_lists_an_empty_table(empty_table_run):
    res, unused, tmp = empty_table_run
    assert res.returncode == 0, res.stderr
    # Only ipvsadm's own output: no kernel boot messages on either stream.
    assert res.stdout.splitlines() == [
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    ]
    assert res.stderr == ""
    assert_cleaned_up(tmp)


def test_exit_status_output_cwd_and_environment_reach_the_caller(tmp_path):
    # The same boot: lab/uml/on-host refuses to run without --agent.
    script = ('echo "out $PWD $GENTLE_LB_X $MY_VAR"; echo err >&2; "$1" -- true 2>/dev/null; echo "on-host $?"; '
              '"$1" -- true 2>&1 >/dev/null | grep -q "start the guest with lab/uml/run --agent" && echo said; exit 3')
    res = uml(tmp_path, "--env", "MY_VAR", "--", "sh", "-c", script, "sh", ON_HOST,
              env={"GENTLE_LB_X": "passed", "MY_VAR": "named"})
    assert res.returncode == 3
    assert res.stdout == "out %s passed named\non-host 125\nsaid\n" % tmp_path
    assert res.stderr == "err\n"
    assert_cleaned_up(tmp_path)


def test_timeout_kills_the_guest_and_returns_124(tmp_path, boot_seconds):
    # The timeout must fall while the command runs, not during the boot: give
    # it twice the boot this machine just took, plus 2 s.
    timeout = round(2 * boot_seconds + 2, 1)
    started_file = tmp_path / "started"
    started = time.monotonic()
    res = uml(tmp_path, "--timeout", str(timeout), "--log", str(tmp_path / "console.log"),
              "--", "sh", "-c", 'touch "$1"; exec sleep 600', "sh", str(started_file), timeout=timeout + 120)
    elapsed = time.monotonic() - started
    assert res.returncode == 124, res.stderr
    assert "timeout after %gs" % timeout in res.stderr
    assert started_file.exists(), "the guest was killed before the command started (boot took %.1f s)" % boot_seconds
    assert timeout <= elapsed < timeout + 30, (timeout, elapsed)
    # The console log was asked for explicitly; the kept copy is reported.
    assert "Linux version" in (tmp_path / "console.log").read_text()
    kept = re.search(r"guest console log: (\S+)", res.stderr).group(1)
    os.unlink(kept)
    (tmp_path / "console.log").unlink()
    started_file.unlink()
    assert_cleaned_up(tmp_path)


def test_two_concurrent_runs_do_not_collide(tmp_path):
    results = {}

    def one(name):
        results[name] = uml(tmp_path, "--", "sh", "-c",
                            "ipvsadm -A -t 10.0.0.1:80 && ipvsadm -Sn && echo %s" % name)

    threads = [threading.Thread(target=one, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b"):
        # Each guest has its own kernel, so each saw only its own service.
        assert results[name].returncode == 0, results[name].stderr
        assert results[name].stdout == "-A -t 10.0.0.1:80 -s wlc\n%s\n" % name
    assert_cleaned_up(tmp_path)


def test_netns_lab_counts_a_held_connection_until_it_is_released(tmp_path):
    # One boot: hold a connection from the client namespace, list, release,
    # wait for IPVS to see the close, list again.
    script = r"""
set -e
ip netns exec client python3 "$LAB_UML_DIR/holdconn.py" -n 1 --ready /run/held \
    --until /run/release --hold 60 10.0.0.100 80 > /run/hold.out &
i=0; while [ ! -e /run/held ]; do i=$((i+1)); [ $i -lt 300 ] || exit 9; sleep 0.1; done
echo "--- held $(cat /run/hold.out)"
ipvsadm -Ln
touch /run/release
wait
# The close is seen as soon as the FIN passes the director; allow a moment.
i=0; while ipvsadm -Ln | awk '$1 == "->" && $5 + 0 > 0 {busy = 1} END {exit !busy}'; do
    i=$((i+1)); [ $i -lt 50 ] || break; sleep 0.1
done
echo "--- released"
ipvsadm -Ln
"""
    res = uml(tmp_path, "--netns-lab", "--", "sh", "-c", script)
    assert res.returncode == 0, res.stdout + res.stderr
    held, released = res.stdout.split("--- released\n")
    answered_by = held.splitlines()[0].split()[-1]   # "--- held 0 <port> rs1"
    rs = {"rs1": "172.16.1.2:80", "rs2": "172.16.2.2:80"}[answered_by]
    other = ({"172.16.1.2:80", "172.16.2.2:80"} - {rs}).pop()
    assert active_conns(held, rs) == 1
    assert active_conns(held, other) == 0
    assert active_conns(released, rs) == 0
    assert_cleaned_up(tmp_path)


# -------------------------------------------------------------- --agent


AGENT_PLAYBOOK = """
- name: The controller on the host, the tasks in the guest
  hosts: guest
  gather_facts: false
  tasks:
    - name: A module in the guest
      ansible.builtin.command: cat /proc/cpuinfo
      register: cpuinfo
      changed_when: false
    - name: A file to the guest's own /run (put)
      ansible.builtin.copy:
        content: "from the host\\n"
        dest: /run/agent-test.txt
        mode: "0644"
    - name: Back from the guest (fetch)
      ansible.builtin.fetch:
        src: /run/agent-test.txt
        dest: "{{ out }}/fetched.txt"
        flat: true
    - name: Controller facts
      ansible.builtin.debug:
        msg: "GUEST_UML={{ 'User Mode Linux' in cpuinfo.stdout }} HOST_UML={{ 'User Mode Linux' in lookup('file', '/proc/cpuinfo') }}"
    - name: A failing command, for the exit status
      ansible.builtin.command: sh -c 'echo failing >&2; exit 3'
      when: fail_at_the_end | bool
"""


@pytest.mark.skipif(not os.access(os.path.join(VENV_BIN, "ansible-playbook"), os.X_OK),
                    reason="no .venv (make setup)")
def test_agent_runs_the_controller_on_the_host_and_its_tasks_in_the_guest(tmp_path):
    playbook = tmp_path / "agent.yml"
    playbook.write_text(AGENT_PLAYBOOK)
    (tmp_path / "inventory").write_text(
        "guest ansible_connection=uml ansible_python_interpreter=/usr/bin/python3\n")
    log = tmp_path / "playbook.log"

    def run_playbook(fail, output):
        return shlex.join([
            ON_HOST, "--output", str(output), "--env", "ANSIBLE_REMOTE_TMP=/run/ansible-tmp",
            "--env", "ANSIBLE_NOCOLOR=1", "--", os.path.join(VENV_BIN, "ansible-playbook"),
            "-i", str(tmp_path / "inventory"), str(playbook), "-e", "out=%s" % tmp_path,
            "-e", "fail_at_the_end=%s" % fail])
    # One boot: a good run, a look at the guest, a failing run.
    script = ('%s; echo "rc=$?"; test ! -e /run/agent-test.txt || echo "guest has the file"; '
              '%s; echo "rc=$?"; ls -A /run/uml/ctl/agent; ls -A /run/uml/ctl/host'
              % (run_playbook("false", log), run_playbook("true", tmp_path / "failing.log")))
    res = uml(tmp_path, "--agent", "--", "sh", "-c", script)
    assert res.returncode == 0, res.stdout + res.stderr
    text = log.read_text()
    assert "GUEST_UML=True HOST_UML=False" in text, text
    assert re.search(r"guest\s+: ok=4\s+changed=2 .* failed=0", text), text
    assert (tmp_path / "fetched.txt").read_text() == "from the host\n"
    assert not os.path.exists("/run/agent-test.txt")  # it went to the guest's /run only
    lines = res.stdout.splitlines()
    # The failing task's exit status came back through on-host (2: a host failed).
    assert lines[:3] == ["rc=0", "guest has the file", "rc=2"], res.stdout
    assert "failing" in (tmp_path / "failing.log").read_text()
    # Nothing left in the mailboxes but the agent's own files.
    assert sorted(lines[3:]) == ["heartbeat", "ready"], res.stdout
    assert_cleaned_up(tmp_path)


@pytest.mark.skipif(not os.access(os.path.join(VENV_BIN, "ansible"), os.X_OK), reason="no .venv (make setup)")
def test_the_uml_connection_without_an_agent_says_what_to_do(tmp_path):
    env = dict(os.environ, LAB_UML_AGENT=str(tmp_path), ANSIBLE_NOCOLOR="1", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
               ANSIBLE_CONNECTION_PLUGINS=os.path.join(REPO, "lab", "uml", "connection"))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible"), "guest", "-i", "guest,", "-c", "uml", "-m", "ping"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode != 0
    assert ("uml guest agent %s: no agent listens there (no 'ready' file); start the guest with lab/uml/run "
            "--agent and run the controller through lab/uml/on-host" % tmp_path) in proc.stdout + proc.stderr
