#!/usr/bin/env python3
"""Draining one real server on a big LVS director: ipvs_member vs an ipvsadm loop.

Inside the user-mode Linux kernel (lab/uml/run; real IPVS), a director with
1,000 destinations across 50 virtual services (20 each; real server 10.9.0.1
is one of them in 10 of the services).  Measured, in the same boot and
against the same table, the work "take 10.9.0.1 out of rotation everywhere":

* ours:  one ``gentle.lb.ipvs_member address=10.9.0.1 state=drained`` call
         (the module file run by the venv's Python, as Ansible's module runner
         does on the director): it reads the whole table, plans, remembers the
         10 weights in its state file, restates every option on each of the
         10 ``ipvsadm -e``, checks the floor and waits for ActiveConn 0;
* peer:  the seed scripts' way, a shell loop of ``ipvsadm -e -t VIP:80 -r
         10.9.0.1:80 -g -w 0`` over the 10 services (a list it already knows:
         no discovery, no thresholds restated, no waiting, no memory);
* with ``--baseline DIR``: the same module call from another checkout
         (DIR holds ansible_collections/gentle/lb), alternated with ours, so a
         before/after is measured in the same run.

Then where one call's time goes: Python's start-up, importing
ansible.module_utils.basic (which Ansible's AnsiballZ wrapper imports before
any module), the collection's own module_utils, a run refused before any
ipvsadm call, and inside the run the ipvsadm processes, parsing, the state
file and the warnings.  Also once: ``ansible localhost -m
gentle.lb.ipvs_member`` (ad hoc, with the controller's start-up), and the
AnsiballZ payload that ad-hoc run left behind, run again on its own (what a
director runs per task).  Between runs the table is rebuilt with one
``ipvsadm -R``.  Numbers, not assertions.

    python3 bench/ipvs_scale.py [--runs 7] [--baseline DIR]   (on the host: boots the guest)
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
MODULE = "ansible_collections.gentle.lb.plugins.modules.ipvs_member"
SERVICES = 50
PER_SERVICE = 20
SHARED = "10.9.0.1"
SHARED_IN = 10


def table_rules():
    """50 TCP services x 20 route destinations; 10.9.0.1 replaces the first
    destination of the first 10 services.  Weights and thresholds vary, so a
    tool that loses options on edit would show it."""
    rules = []
    for svc in range(SERVICES):
        vip = "10.1.%d.%d:80" % (svc // 250, svc % 250 + 1)
        rules.append("-A -t %s -s wlc" % vip)
        for dest in range(PER_SERVICE):
            address = SHARED if (dest == 0 and svc < SHARED_IN) else "10.2.%d.%d" % (svc, dest + 1)
            rules.append("-a -t %s -r %s:80 -g -w %d -x %d -y %d" % (vip, address, dest % 7 + 1,
                                                                     100 + dest, 50 + dest))
    return "\n".join(rules) + "\n"


def shared_services():
    return ["10.1.%d.%d:80" % (svc // 250, svc % 250 + 1) for svc in range(SHARED_IN)]


def ipvsadm(*args, **kwargs):
    return subprocess.run(["ipvsadm"] + list(args), check=True, capture_output=True, text=True, **kwargs).stdout


def rebuild(rules):
    ipvsadm("-C")
    ipvsadm("-R", input=rules)
    count = sum(1 for line in ipvsadm("-Sn").splitlines() if line.startswith("-a"))
    assert count == SERVICES * PER_SERVICE, count


def shared_weights():
    weights = {}
    for line in ipvsadm("-Sn").splitlines():
        words = line.split()
        if words and words[0] == "-a" and words[4] == SHARED + ":80":
            weights[words[2]] = int(words[words.index("-w") + 1])
    return weights


def timed(argv, env=None, stdin=None):
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, input=stdin, check=False)
    return time.monotonic() - started, proc


def run_module(state_file, collections=COLLECTIONS, floor=False):
    """One module process; with floor=True arguments it refuses before any
    ipvsadm call (weight out of range): Python + Ansible's module start-up."""
    params = {"address": SHARED, "state": "drained", "state_file": state_file}
    if floor:
        params.update(state="present", weight=70000)
    args = {"ANSIBLE_MODULE_ARGS": dict(params, _ansible_check_mode=False, _ansible_diff=False)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir="/run") as handle:
        json.dump(args, handle)
    env = dict(os.environ, PYTHONPATH=collections)
    elapsed, proc = timed([VENV_PYTHON, "-m", MODULE, handle.name], env=env)
    os.unlink(handle.name)
    result = json.loads(proc.stdout)
    if floor:
        assert result.get("failed") and "weight 70000" in result["msg"], result
        return elapsed
    assert not result.get("failed") and result["changed"], result
    assert len(result["members"]) == SHARED_IN
    return elapsed


def run_adhoc(state_file, remote_tmp):
    """One ad-hoc call; its AnsiballZ payload is kept in remote_tmp."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_PYTHON_INTERPRETER=VENV_PYTHON,
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=remote_tmp,
               PATH=os.path.join(REPO, ".venv", "bin") + ":" + os.environ["PATH"])
    elapsed, proc = timed([os.path.join(REPO, ".venv", "bin", "ansible"), "localhost", "-i", "localhost,",
                           "-c", "local", "-m", "gentle.lb.ipvs_member", "-a",
                           json.dumps({"address": SHARED, "state": "drained", "state_file": state_file})],
                          env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payloads = glob.glob(os.path.join(remote_tmp, "*", "AnsiballZ_ipvs_member.py"))
    return elapsed, payloads[0] if payloads else None


def run_payload(payload):
    """The AnsiballZ payload on its own: what the director runs per task."""
    elapsed, proc = timed([VENV_PYTHON, payload], env=dict(os.environ, PYTHONPATH=""))
    result = json.loads(proc.stdout)
    assert not result.get("failed") and result["changed"], result
    return elapsed


def run_loop():
    script = "for vip in %s; do ipvsadm -e -t $vip -r %s:80 -g -w 0 || exit 1; done" % (
        " ".join(shared_services()), SHARED)
    started = time.monotonic()
    subprocess.run(["/bin/sh", "-c", script], check=True)
    return time.monotonic() - started


def startup_pieces():
    """Python alone; Python and ansible.module_utils.basic."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    return {
        "python": timed([VENV_PYTHON, "-c", "pass"], env=env)[0],
        "basic": timed([VENV_PYTHON, "-c", "import ansible.module_utils.basic"], env=env)[0],
    }


def phases(state_file):
    """In a fresh interpreter, what the run itself spends, by part (JSON)."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    _t, proc = timed([VENV_PYTHON, os.path.abspath(__file__), "--phases", state_file], env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def measure_phases(state_file):
    """Run by ``--phases``: the core's run with the module's backend, timed by part."""
    started = time.perf_counter()
    import ansible.module_utils.basic  # noqa: F401  pylint: disable=unused-import
    basic_done = time.perf_counter()
    from ansible_collections.gentle.lb.plugins.module_utils import ipvs, member, specs  # noqa: F401
    ours_done = time.perf_counter()
    spent = {"ipvsadm": 0.0, "ipvsadm_runs": 0, "listing_runs": 0, "parse": 0.0, "state_file": 0.0,
             "warnings": 0.0}

    def runner(argv, timeout, stdin=None):
        begin = time.perf_counter()
        try:
            return ipvs.spawn_runner(argv, timeout, stdin)
        finally:
            spent["ipvsadm"] += time.perf_counter() - begin
            spent["ipvsadm_runs"] += 1
            spent["listing_runs"] += 1 if argv[1:] == ["-R"] else 0

    def timing(name, function):
        def wrapper(*args, **kwargs):
            begin = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - begin
        return wrapper
    ipvs.parse_listing = timing("parse", ipvs.parse_listing)
    memory = ipvs.WeightMemory(state_file)
    memory.remember_many = timing("state_file", memory.remember_many)
    backend = ipvs.IPVSBackend(ipvs.Ipvsadm(runner), memory=memory)
    backend.result_warnings = timing("warnings", backend.result_warnings)
    request = member.Request("drained", ipvs.selectors([SHARED]), None)
    run_started = time.perf_counter()
    result = member.run(backend, request)
    spent["run"] = time.perf_counter() - run_started
    spent["import_basic"] = basic_done - started
    spent["import_ours"] = ours_done - basic_done
    assert result["changed"] and len(result["members"]) == SHARED_IN
    print(json.dumps(spent))
    return 0


def median(values):
    return statistics.median(values) if values else float("nan")


def spread(values):
    return "%.3f s  (%.3f-%.3f)" % (median(values), min(values), max(values))


def in_guest(runs, baseline):
    rules = table_rules()
    state_dir = tempfile.mkdtemp(dir="/run")
    rebuild(rules)
    version = ipvsadm("--version").strip()
    times = {"ours": [], "peer": [], "baseline": [], "floor": []}
    pieces, inside = [], []
    for run in range(runs):
        times["floor"].append(run_module(os.path.join(state_dir, "floor.json"), floor=True))
        pieces.append(startup_pieces())
        tools = ["ours", "peer"] + (["baseline"] if baseline else [])
        # Rotate the order, so no tool always runs on a warmer cache.
        for tool in tools[run % len(tools):] + tools[:run % len(tools)]:
            rebuild(rules)
            if tool == "peer":
                times["peer"].append(run_loop())
            else:
                state_file = os.path.join(state_dir, "%s%d.json" % (tool, run))
                times[tool].append(run_module(state_file, baseline if tool == "baseline" else COLLECTIONS))
                with open(state_file) as handle:
                    assert len(json.load(handle)["weights"]) == SHARED_IN
            assert set(shared_weights().values()) == {0}, shared_weights()
        rebuild(rules)
        inside.append(phases(os.path.join(state_dir, "phases%d.json" % run)))
    # What the loop leaves is what the module leaves (thresholds included:
    # -x/-y are restated by the module; the loop loses them, see below).
    rebuild(rules)
    adhoc, payload = run_adhoc(os.path.join(state_dir, "adhoc.json"), os.path.join(state_dir, "remote-tmp"))
    after_module = ipvsadm("-Ln", "--thresholds")
    payload_times = []
    for _ in range(3 if payload else 0):
        rebuild(rules)
        payload_times.append(run_payload(payload))
    rebuild(rules)
    run_loop()
    after_loop = ipvsadm("-Ln", "--thresholds")
    lost = sum(1 for a, b in zip(after_module.splitlines(), after_loop.splitlines()) if a != b)

    kernel = os.uname().release
    print("ipvs_scale: %d virtual services, %d destinations; real server %s in %d of them "
          "(Linux %s under user-mode Linux, %s)" % (SERVICES, SERVICES * PER_SERVICE, SHARED, SHARED_IN,
                                                   kernel, version))
    print("take %s out of rotation everywhere, median of %d runs (min-max), same boot, order rotated:" % (SHARED, runs))
    med_ours, med_peer = median(times["ours"]), median(times["peer"])
    print("  gentle.lb.ipvs_member state=drained (one module run)   %s" % spread(times["ours"]))
    if baseline:
        print("  the same from %s  %s" % (baseline, spread(times["baseline"])))
    print("  shell loop of %d ipvsadm -e -w 0                       %s" % (SHARED_IN, spread(times["peer"])))
    print("  ratio ipvs_member / shell loop: %.2fx" % (med_ours / med_peer))
    if baseline:
        print("  ratio ipvs_member / baseline: %.2fx" % (med_ours / median(times["baseline"])))

    python = median([p["python"] for p in pieces])
    basic = median([p["basic"] for p in pieces])
    floor = median(times["floor"])
    keys = ("run", "ipvsadm", "ipvsadm_runs", "listing_runs", "parse", "state_file", "warnings",
            "import_basic", "import_ours")
    mid = dict((k, median([p[k] for p in inside])) for k in keys)
    print("where one module run's time goes (medians; separate processes, so the parts add up only roughly):")
    print("  start Python (python -c pass)                                    %.3f s" % python)
    print("  python -c 'import ansible.module_utils.basic' (AnsiballZ imports it before any module) %.3f s" % basic)
    print("    in-process: import ansible.module_utils.basic                  %.3f s" % mid["import_basic"])
    print("    in-process: then gentle.lb's module_utils (%s)    %.3f s"
          % ("compiled, no .pyc" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "from .pyc", mid["import_ours"]))
    print("  a whole run refused before any ipvsadm call (AnsibleModule, args, exit_json) %.3f s" % floor)
    print("  the run itself (member.run, in-process)                          %.3f s" % mid["run"])
    print("    %d ipvsadm processes (%d of them ipvsadm -R listings)           %.3f s"
          % (mid["ipvsadm_runs"], mid["listing_runs"], mid["ipvsadm"]))
    print("    parsing the listings                                           %.3f s" % mid["parse"])
    print("    the state file (one locked, fsynced write)                     %.3f s" % mid["state_file"])
    print("    warnings (keepalived/ldirectord in /proc, configs, sysctls)    %.3f s" % mid["warnings"])
    print("    the rest (planning, guard, lock, results)                      %.3f s"
          % (mid["run"] - mid["ipvsadm"] - mid["parse"] - mid["state_file"] - mid["warnings"]))
    print("  ansible -m gentle.lb.ipvs_member (ad hoc, once, controller start-up included): %.2f s" % adhoc)
    if payload_times:
        print("  its AnsiballZ payload run again on its own (per task on the director): %s" % spread(payload_times))
    print("  thresholds: the module kept all %d; the loop's -e reset them on %d destination lines"
          % (SHARED_IN, lost))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time the module from DIR (a directory holding ansible_collections/gentle/lb)")
    parser.add_argument("--in-guest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phases", metavar="STATE_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phases:
        return measure_phases(args.phases)
    if args.in_guest:
        return in_guest(args.runs, args.baseline)
    link = os.path.join(COLLECTIONS, "ansible_collections", "gentle", "lb")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    extra = ["--baseline", os.path.abspath(args.baseline)] if args.baseline else []
    return subprocess.call([sys.executable, os.path.join(REPO, "lab", "uml", "run"), "--timeout", "1500", "--",
                            VENV_PYTHON, os.path.abspath(__file__), "--in-guest", "--runs", str(args.runs)] + extra,
                           cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
