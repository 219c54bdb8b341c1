# -*- coding: utf-8 -*-
"""Smoke tests for lab/uml/run, the user-mode Linux harness with real IPVS.

Each test boots a guest (about 2 s each; the netns lab adds about 2 s).  Every
run gets TMPDIR set to the test's tmp_path, so the harness's run directory is
created there and the test can prove it was removed, and find any process
still carrying it on its command line.
"""

import os
import re
import shutil
import subprocess
import threading

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(REPO, "lab", "uml", "run")

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


def test_ipvsadm_lists_an_empty_table(tmp_path):
    res = uml(tmp_path, "--", "ipvsadm", "-Ln")
    assert res.returncode == 0, res.stderr
    # Only ipvsadm's own output: no kernel boot messages on either stream.
    assert res.stdout.splitlines() == [
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    ]
    assert res.stderr == ""
    assert_cleaned_up(tmp_path)


def test_exit_status_output_cwd_and_environment_reach_the_caller(tmp_path):
    script = 'echo "out $PWD $GENTLE_LB_X $MY_VAR"; echo err >&2; exit 3'
    res = uml(tmp_path, "--env", "MY_VAR", "--", "sh", "-c", script,
              env={"GENTLE_LB_X": "passed", "MY_VAR": "named"})
    assert res.returncode == 3
    assert res.stdout == "out %s passed named\n" % tmp_path
    assert res.stderr == "err\n"
    assert_cleaned_up(tmp_path)


def test_timeout_kills_the_guest_and_returns_124(tmp_path):
    res = uml(tmp_path, "--timeout", "3", "--log", str(tmp_path / "console.log"),
              "--", "sleep", "60", timeout=60)
    assert res.returncode == 124
    assert "timeout" in res.stderr
    # The console log was asked for explicitly; the kept copy is reported.
    assert "Linux version" in (tmp_path / "console.log").read_text()
    kept = re.search(r"guest console log: (\S+)", res.stderr).group(1)
    os.unlink(kept)
    (tmp_path / "console.log").unlink()
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
