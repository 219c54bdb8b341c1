#!/usr/bin/env python3
"""Draining one real server on a big LVS director: ipvs_member vs an ipvsadm loop.

Inside the user-mode Linux kernel (lab/uml/run; real IPVS), a director with
1,000 destinations across 50 virtual services (20 each; real server 10.9.0.1
is one of them in 10 of the services).  Measured, in the same boot and
against the same table, the work "take 10.9.0.1 out of rotation everywhere":

* ours:  one ``gentle.lb.ipvs_member address=10.9.0.1 state=drained`` call
         (the module file run by the venv's Python, as Ansible's module runner
         does on the director): it reads the whole table (three listings),
         plans, remembers the 10 weights in its state file, restates every
         option on each of the 10 ``ipvsadm -e`` and waits for ActiveConn 0;
* peer:  the seed scripts' way, a shell loop of ``ipvsadm -e -t VIP:80 -r
         10.9.0.1:80 -g -w 0`` over the 10 services (a list it already knows:
         no discovery, no thresholds restated, no waiting, no memory).

Also once: ``ansible localhost -m gentle.lb.ipvs_member`` (ad hoc, with the
controller's start-up).  Between runs the table is rebuilt with one
``ipvsadm -R``.  Numbers, not assertions.

    python3 bench/ipvs_scale.py [--runs 5]          (on the host: boots the guest)
"""

import argparse
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


def run_module(state_file, floor=False):
    """One module process; with floor=True arguments it refuses before any
    ipvsadm call (weight out of range): Python + Ansible's module start-up."""
    params = {"address": SHARED, "state": "drained", "state_file": state_file}
    if floor:
        params.update(state="present", weight=70000)
    args = {"ANSIBLE_MODULE_ARGS": dict(params, _ansible_check_mode=False, _ansible_diff=False)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir="/run") as handle:
        json.dump(args, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    started = time.monotonic()
    proc = subprocess.run([VENV_PYTHON, "-m", "ansible_collections.gentle.lb.plugins.modules.ipvs_member",
                           handle.name], capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - started
    os.unlink(handle.name)
    result = json.loads(proc.stdout)
    if floor:
        assert result.get("failed") and "weight 70000" in result["msg"], result
        return elapsed
    assert not result.get("failed") and result["changed"], result
    assert len(result["members"]) == SHARED_IN
    return elapsed


def run_adhoc(state_file):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_PYTHON_INTERPRETER=VENV_PYTHON,
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_NOCOLOR="1", PATH=os.path.join(REPO, ".venv", "bin") + ":" + os.environ["PATH"])
    started = time.monotonic()
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible"), "localhost", "-i", "localhost,",
                           "-c", "local", "-m", "gentle.lb.ipvs_member", "-a",
                           json.dumps({"address": SHARED, "state": "drained", "state_file": state_file})],
                          capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return elapsed


def run_loop():
    script = "for vip in %s; do ipvsadm -e -t $vip -r %s:80 -g -w 0 || exit 1; done" % (
        " ".join(shared_services()), SHARED)
    started = time.monotonic()
    subprocess.run(["/bin/sh", "-c", script], check=True)
    return time.monotonic() - started


def in_guest(runs):
    rules = table_rules()
    state_dir = tempfile.mkdtemp(dir="/run")
    rebuild(rules)
    version = ipvsadm("--version").strip()
    ours, peer, floor = [], [], []
    for run in range(runs):
        floor.append(run_module(os.path.join(state_dir, "floor.json"), floor=True))
        # Alternate the order, so neither tool always runs on a warmer cache.
        for tool in (("ours", "peer") if run % 2 == 0 else ("peer", "ours")):
            rebuild(rules)
            if tool == "ours":
                state_file = os.path.join(state_dir, "w%d.json" % run)
                ours.append(run_module(state_file))
                with open(state_file) as handle:
                    assert len(json.load(handle)["weights"]) == SHARED_IN
            else:
                peer.append(run_loop())
            assert set(shared_weights().values()) == {0}, shared_weights()
    # What the loop leaves is what the module leaves (thresholds included:
    # -x/-y are restated by the module; the loop loses them, see below).
    rebuild(rules)
    adhoc = run_adhoc(os.path.join(state_dir, "adhoc.json"))
    after_module = ipvsadm("-Ln", "--thresholds")
    rebuild(rules)
    run_loop()
    after_loop = ipvsadm("-Ln", "--thresholds")
    lost = sum(1 for a, b in zip(after_module.splitlines(), after_loop.splitlines()) if a != b)

    kernel = os.uname().release
    print("ipvs_scale: %d virtual services, %d destinations; real server %s in %d of them "
          "(Linux %s under user-mode Linux, %s)" % (SERVICES, SERVICES * PER_SERVICE, SHARED, SHARED_IN,
                                                   kernel, version))
    print("take %s out of rotation everywhere, median of %d runs (min-max):" % (SHARED, runs))
    med_ours, med_peer = statistics.median(ours), statistics.median(peer)
    print("  gentle.lb.ipvs_member state=drained (one module run) %6.3f s  (%.3f-%.3f)"
          % (med_ours, min(ours), max(ours)))
    print("  shell loop of %d ipvsadm -e -w 0                     %6.3f s  (%.3f-%.3f)"
          % (SHARED_IN, med_peer, min(peer), max(peer)))
    print("  ratio ipvs_member / shell loop: %.2fx" % (med_ours / med_peer))
    med_floor = statistics.median(floor)
    print("  of the module's %.3f s, %.3f s is the start-up of one module process (Python + Ansible's module "
          "code,\n  a run refused before any ipvsadm call); the rest, %.3f s, reads 1,000 destinations (2 listings),"
          "\n  writes the state file once, runs 10 restating ipvsadm -e and polls once"
          % (med_ours, med_floor, med_ours - med_floor))
    print("  ansible -m gentle.lb.ipvs_member (ad hoc, once, controller start-up included): %.2f s" % adhoc)
    print("  thresholds: the module kept all %d; the loop's -e reset them on %d destination lines"
          % (SHARED_IN, lost))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--in-guest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_guest:
        return in_guest(args.runs)
    link = os.path.join(COLLECTIONS, "ansible_collections", "gentle", "lb")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    return subprocess.call([sys.executable, os.path.join(REPO, "lab", "uml", "run"), "--timeout", "900", "--",
                            VENV_PYTHON, os.path.abspath(__file__), "--in-guest", "--runs", str(args.runs)],
                           cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
