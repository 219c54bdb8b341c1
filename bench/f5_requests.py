#!/usr/bin/env python3
"""How many HTTP requests (and how long) does one F5 pool-member toggle cost?

Against the F5 emulator (lab/f5_emulator, HTTPS, its own process on 127.0.0.1)
with one pool of 1,000 members, measured in the same run:

(a) ``gentle.lb.f5_pool_member state=drained`` on one member, with the login
    token cached from an earlier task (the default, ``token_cache``), and (a0)
    the same with ``token_cache=false`` (login, and the token deleted, per task);
(b) F5's ``f5networks.f5_modules.bigip_pool_member state=disabled`` on one member
    (PyPI's ``ansible`` package in .venv-peers, lab/peers/setup.sh);
(c) ``gentle.lb.f5_pool_member_info`` reading the whole pool with live stats
    (token cached), against a per-member read (GET member + GET member/stats for
    each member, with one requests session and one token: what a client that
    reads members one at a time needs -- bigip_pool_member has no read-only mode).

Each module runs as its own venv's Python runs a module file (Ansible's
controller start-up is the same for both and would blur the numbers); one
ad-hoc ``ansible localhost -m ...`` wall time per module is printed as well.
HTTP requests are counted by the emulator's request log and include login and
token deletion.  Members carry no connections, so (a) does not wait; note that
(b) never waits for connections anyway.

Numbers, not assertions: this is a benchmark, not a test.

    python3 bench/f5_requests.py [--members 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.f5_emulator import F5Emulator  # noqa: E402

OURS_VENV = REPO / ".venv"
PEERS_VENV = Path(os.environ.get("PEERS_VENV", REPO / ".venv-peers"))
COLLECTIONS = REPO / ".cache" / "collections"
PEER_MODULE = "f5networks.f5_modules.bigip_pool_member"


def ensure_collection_link():
    link = COLLECTIONS / "ansible_collections" / "gentle" / "lb"
    if not link.is_symlink() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)


def member_name(index):
    return "10.1.%d.%d:80" % (index // 250, index % 250 + 1)


def seed(members):
    return {"pools": [{"name": "bench", "members": [{"name": member_name(i)} for i in range(members)]}]}


TOKEN_DIR = tempfile.mkdtemp(prefix="f5-bench-tokens-")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "F5_", "GENTLE_LB_")) and k not in ("PYTHONPATH", "REQUESTS_CA_BUNDLE")}
    env["GENTLE_LB_F5_TOKEN_DIR"] = TOKEN_DIR    # ours: a cache of its own
    env.update(F5_TELEMETRY_OFF="true", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_DEPRECATION_WARNINGS="false")
    env.update(extra)
    return env


def run_module_file(venv, module_path, args, pythonpath=None):
    """One module run, the way Ansible's module runner starts it; returns (result, seconds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=False, _ansible_diff=False)}, handle)
        args_file = handle.name
    env = clean_env(**({"PYTHONPATH": str(pythonpath)} if pythonpath else {}))
    started = time.monotonic()
    try:
        proc = subprocess.run([str(venv / "bin" / "python"), "-m", module_path, args_file], capture_output=True,
                              text=True, env=env, cwd=str(REPO), timeout=600)
    finally:
        os.unlink(args_file)
    elapsed = time.monotonic() - started
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit("%s printed no JSON:\n%s\n%s" % (module_path, proc.stdout, proc.stderr))
    if result.get("failed"):
        raise SystemExit("%s failed: %s" % (module_path, result.get("msg")))
    return result, elapsed


def run_adhoc(venv, module, args, collections=None):
    # ansible-core 2.21 has no 'json' stdout callback; 'minimal' prints "localhost | STATUS => {json}".
    env = clean_env(ANSIBLE_PYTHON_INTERPRETER=str(venv / "bin" / "python"),
                    ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    if collections:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    cmd = [str(venv / "bin" / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", module,
           "-a", json.dumps(args)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=600)
    elapsed = time.monotonic() - started
    marker = re.search(r"^localhost \| ([A-Z]+!?) => \{", proc.stdout, re.MULTILINE)
    try:
        result = json.JSONDecoder().raw_decode(proc.stdout, marker.end() - 1)[0]
    except (ValueError, AttributeError):
        raise SystemExit("ansible -m %s gave no JSON result:\n%s\n%s" % (module, proc.stdout[-2000:], proc.stderr))
    if marker.group(1) != "CHANGED" and marker.group(1) != "SUCCESS":
        raise SystemExit("ansible -m %s: %s %s" % (module, marker.group(1), result.get("msg")))
    if result.get("failed"):
        raise SystemExit("ansible -m %s failed: %s" % (module, result.get("msg")))
    return result, elapsed


def per_member_read(f5, names):
    """The baseline for (c): one GET per member and one per member's stats."""
    import requests
    import urllib3
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    session = requests.Session()
    base = f5.url
    token = session.post(base + "/mgmt/shared/authn/login", verify=False, timeout=30,
                         json={"username": f5.user, "password": f5.password,
                               "loginProviderName": "tmos"}).json()["token"]["token"]
    headers = {"X-F5-Auth-Token": token}
    for name in names:
        path = base + "/mgmt/tm/ltm/pool/~Common~bench/members/~Common~" + name
        session.get(path, headers=headers, verify=False, timeout=30).raise_for_status()
        session.get(path + "/stats", headers=headers, verify=False, timeout=30).raise_for_status()
    session.delete(base + "/mgmt/shared/authz/tokens/" + token, headers=headers, verify=False, timeout=30)
    session.close()


def counted(f5, action):
    """Run ``action``; return (its result, seconds, requests seen, requests by method+path)."""
    f5.reset_requests()
    started = time.monotonic()
    result = action()
    elapsed = time.monotonic() - started
    log = f5.requests(entries=False)
    return result, elapsed, log["total"], log["counts"]


def summarise(counts):
    """'POST login 1, GET members 1, ...' with paths shortened."""
    out = []
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        method, path = key.split(" ", 1)
        short = path.replace("/mgmt/tm/ltm/pool/~Common~bench", "<pool>").replace("/mgmt/shared/", "")
        if "/members/~Common~" in short:
            short = short.split("/members/~Common~")[0] + "/members/<member>" + (
                "/stats" if short.endswith("/stats") else "")
        if short.startswith("authz/tokens/"):
            short = "authz/tokens/<token>"
        out.append((method, short, n))
    merged = {}
    for method, short, n in out:
        merged[(method, short)] = merged.get((method, short), 0) + n
    return ", ".join("%s %s x%d" % (m, p, n) for (m, p), n in merged.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    if not (PEERS_VENV / "bin" / "ansible").exists():
        raise SystemExit("%s is missing: run lab/peers/setup.sh first" % PEERS_VENV)
    ensure_collection_link()

    with F5Emulator(seed=seed(opts.members), subprocess=True) as f5:
        conn = dict(server="127.0.0.1", server_port=f5.port, user=f5.user, password=f5.password,
                    validate_certs=False)
        provider = dict(f5.provider, no_f5_teem=True)
        ours_mod = "ansible_collections.gentle.lb.plugins.modules."
        peer_mod = "ansible_collections.f5networks.f5_modules.plugins.modules.bigip_pool_member"
        rows = {}

        def measure(label, make_action):
            times, totals, counts = [], [], None
            for run in range(opts.runs):
                _, elapsed, total, counts = counted(f5, make_action(run))
                times.append(elapsed)
                totals.append(total)
            rows[label] = (statistics.median(times), totals, counts)

        # (a) and (b): a different member each run, so every run really changes one.
        # A first task logs in and learns the device (standalone), as any earlier task would.
        run_module_file(OURS_VENV, ours_mod + "f5_pool_member",
                        dict(conn, pool="bench", address=member_name(999).split(":")[0], port=80, state="drained"),
                        pythonpath=COLLECTIONS)
        measure("a", lambda run: lambda: run_module_file(
            OURS_VENV, ours_mod + "f5_pool_member",
            dict(conn, pool="bench", address=member_name(run).split(":")[0], port=80, state="drained"),
            pythonpath=COLLECTIONS))
        measure("a0", lambda run: lambda: run_module_file(
            OURS_VENV, ours_mod + "f5_pool_member",
            dict(conn, pool="bench", address=member_name(50 + run).split(":")[0], port=80, state="drained",
                 token_cache=False), pythonpath=COLLECTIONS))
        measure("b", lambda run: lambda: run_module_file(
            PEERS_VENV, peer_mod,
            dict(provider=provider, pool="bench", address=member_name(100 + run).split(":")[0], port=80,
                 state="disabled")))
        measure("c", lambda run: lambda: run_module_file(
            OURS_VENV, ours_mod + "f5_pool_member_info", dict(conn, pool="bench"), pythonpath=COLLECTIONS))
        names = [member_name(i) for i in range(opts.members)]
        measure("c0", lambda run: lambda: per_member_read(f5, names))

        # One ad-hoc call each, controller included.
        _, adhoc_ours = run_adhoc(OURS_VENV, "gentle.lb.f5_pool_member",
                                  dict(conn, pool="bench", address=member_name(200).split(":")[0], port=80,
                                       state="drained"), collections=COLLECTIONS)
        _, adhoc_peer = run_adhoc(PEERS_VENV, PEER_MODULE,
                                  dict(provider=provider, pool="bench", address=member_name(201).split(":")[0],
                                       port=80, state="disabled"))
        info_result, _ = run_module_file(OURS_VENV, ours_mod + "f5_pool_member_info", dict(conn, pool="bench"),
                                         pythonpath=COLLECTIONS)
        assert len(info_result["members"]) == opts.members

    def line(label, text):
        seconds, totals, counts = rows[label]
        reqs = "%d" % totals[0] if len(set(totals)) == 1 else "%d-%d" % (min(totals), max(totals))
        print("  %-58s %7s requests  %7.3f s" % (text, reqs, seconds))
        print("  %-58s %s" % ("", summarise(counts)))

    print("F5 emulator, one pool of %d members, HTTPS on 127.0.0.1; median of %d runs; module runs without the "
          "Ansible controller" % (opts.members, opts.runs))
    print()
    print("Draining one member")
    line("a", "(a) gentle.lb.f5_pool_member state=drained (token cached)")
    line("a0", "(a0) the same, token_cache=false")
    line("b", "(b) bigip_pool_member state=disabled")
    a, b = rows["a"], rows["b"]
    print("  %-58s %7.2fx requests %7.2fx time" % ("ratio (b)/(a)", b[1][0] / float(a[1][0]), b[0] / a[0]))
    print("  %-58s %7.3f s vs %.3f s (ratio %.2fx)" % ("ad hoc 'ansible localhost -m', (a) vs (b)", adhoc_ours,
                                                         adhoc_peer, adhoc_peer / adhoc_ours))
    print("  (a) reads every member's configuration (capacity guard) and the member's stats, writes, reads every")
    print("  member's stats (the floor check, which is also the wait's first look) and waits for the member's")
    print("  connections; (b) reads only the member and never waits.")
    print()
    print("Reading the whole pool with live state and connection counts")
    line("c", "(c) gentle.lb.f5_pool_member_info pool=bench (token cached)")
    line("c0", "    per-member reads (GET member + member/stats each)")
    c, c0 = rows["c"], rows["c0"]
    print("  %-58s %7.2fx requests %7.2fx time" % ("ratio per-member/(c)", c0[1][0] / float(c[1][0]),
                                                    c0[0] / c[0]))


if __name__ == "__main__":
    main()
