# -*- coding: utf-8 -*-
"""The rolling_deploy role against the real kernel IPVS, inside the user-mode
Linux guest (run by test_ipvs.py through ``lab/uml/run --netns-lab --agent``; it
refuses to run anywhere else: it builds an IPVS service and starts servers in
network namespaces).

    lab/uml/run --netns-lab --agent --env LAB_RS_COUNT=3 -- .venv/bin/python ipvs_scenario.py WORKDIR

In the guest (see lab/uml/README.md for the netns lab): one lab/app instance
per real-server namespace rsN on 172.16.N.2:8080, a NAT service
10.0.0.100:8080 over them, lab/loadgen.py in the client namespace against the
VIP, and ansible-playbook playbooks/rolling_deploy.yml rolling every real
server from v1 to v2 with ``ipvs`` bindings delegated to the director (the
guest's root namespace).  The controller runs on the host (lab/uml/on-host)
and reaches the guest through its agent (connection ``uml``), as a real
controller reaches a director over SSH: only the modules pay for the
user-mode kernel's slow process starts, not the controller's own work.  Then, for contrast, one real server is restarted
without draining, under the same load.  Everything measured is written to
WORKDIR/result.json for the host test to check.
"""

import http.client
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
PYTHON = sys.executable
CTL = os.path.join(REPO, "lab", "app", "ctl.py")
LOADGEN = os.path.join(REPO, "lab", "loadgen.py")
ON_HOST = os.path.join(REPO, "lab", "uml", "on-host")
# The modules run with the director's Debian Python (no Ansible there, as on
# a real director), from the guest's own tmpfs.
GUEST_PYTHON = "/usr/bin/python3"
REMOTE_TMP = "/run/rl-ipvs/ansible-remote"
VIP, PORT = "10.0.0.100", 8080
SERVICE = "tcp:%s:%d" % (VIP, PORT)


def log(msg):
    print("ipvs_scenario: %s" % msg, file=sys.stderr, flush=True)


def sh(*cmd, **kwargs):
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, **kwargs).stdout


def rs_address(n):
    return "172.16.%d.2" % n


def version_of(n):
    try:
        conn = http.client.HTTPConnection(rs_address(n), PORT, timeout=2)
        conn.request("GET", "/version", headers={"Connection": "close"})
        body = conn.getresponse().read().decode().strip()
        conn.close()
        return body
    except OSError:
        return "down"


def ipvs_weights():
    """{real server address: weight} of our service, from ipvsadm -Ln."""
    out = sh("ipvsadm", "-Ln", "-t", "%s:%d" % (VIP, PORT))
    weights = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "->" and ":" in parts[1] and parts[1][0].isdigit():
            weights[parts[1].rsplit(":", 1)[0]] = int(parts[3])
    return weights


def inventory(work, count):
    hosts = {}
    for n in range(1, count + 1):
        hosts["rs%d" % n] = {
            "lab_exec_prefix": ["ip", "netns", "exec", "rs%d" % n],
            "lab_app_bind": rs_address(n),
            "lab_app_port": PORT,
            "lab_app_pidfile": os.path.join(work, "rs%d.pid" % n),
            "lab_app_logfile": os.path.join(work, "rs%d.log" % n),
            "rolling_deploy_bindings": [{
                "type": "ipvs", "delegate_to": "director", "virtual_service": SERVICE,
                "address": rs_address(n), "port": PORT,
                "state_file": os.path.join(work, "ipvs-weights.json"),
            }],
        }
    return {"all": {
        # No pipelining through the agent: Python reading a module from a pipe
        # is slower in the user-mode kernel, not faster (lab/uml/README.md).
        "vars": {"ansible_connection": "uml", "ansible_python_interpreter": GUEST_PYTHON},
        "children": {
            "lvs": {"hosts": {"director": {}}},
            "app": {"hosts": hosts, "vars": {
                "lab_python": PYTHON, "lab_ctl": CTL, "lab_version": "v2", "lab_versions": {},
                "lab_stop_timeout": 10,
                "rolling_deploy_tasks_file": os.path.join(REPO, "lab", "demo", "deploy.yml"),
                "rolling_deploy_health_url": "http://{{ lab_app_bind }}:{{ lab_app_port }}/health",
                "rolling_deploy_health_body": "^OK {{ lab_versions[inventory_hostname] | default(lab_version) }}$",
                "rolling_deploy_health_retries": 20,
                "rolling_deploy_health_delay": 0.25,
                "rolling_deploy_drain_timeout": 60,
            }},
        },
    }}


class Load(object):
    """lab/loadgen.py in the client namespace, against the VIP."""

    def __init__(self, work, name):
        self.stop_file = os.path.join(work, name + ".stop")
        self.json_out = os.path.join(work, name + ".json")
        # New connections only: a keep-alive connection stays on its real
        # server through a weight-0 drain until the client closes it, so a
        # drain that waits for ActiveConn 0 would wait for the client (see
        # docs/rolling_deploy.md, "IPVS and keep-alive").
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", "client", PYTHON, LOADGEN, "--url", "http://%s:%d/" % (VIP, PORT),
             "--until-file", self.stop_file, "--json-out", self.json_out, "--keepalive-share", "0",
             "--rate", "25", "--concurrency", "4", "--slow-share", "0.1", "--slow-ms", "300",
             "--duration", "600", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)

    def stop(self):
        open(self.stop_file, "w").close()
        self.proc.communicate(timeout=60)
        with open(self.json_out) as handle:
            summary = json.load(handle)
        summary.pop("timeline", None)
        return summary


def main(work):
    if os.environ.get("LAB_UML_GUEST") != "1":
        sys.exit("ipvs_scenario.py: run me inside the user-mode Linux guest (lab/uml/run --netns-lab)")
    count = int(os.environ.get("LAB_RS_COUNT", "2"))
    result = {}
    for n in range(1, count + 1):
        sh("ip", "netns", "exec", "rs%d" % n, PYTHON, CTL, "start", "--bind", rs_address(n), "--port", str(PORT),
           "--name", "rs%d" % n, "--version", "v1", "--pidfile", os.path.join(work, "rs%d.pid" % n))
    sh("ipvsadm", "-A", "-t", "%s:%d" % (VIP, PORT), "-s", "rr")
    for n in range(1, count + 1):
        sh("ipvsadm", "-a", "-t", "%s:%d" % (VIP, PORT), "-r", "%s:%d" % (rs_address(n), PORT), "-m", "-w", "1")
    log("%d real servers up, service %s" % (count, SERVICE))
    inv = os.path.join(work, "inventory.json")
    with open(inv, "w") as handle:
        json.dump(inventory(work, count), handle)
    env = {"ANSIBLE_SHOW_CUSTOM_STATS": "1", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".cache", "collections"),
           "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false", "ANSIBLE_RETRY_FILES_ENABLED": "false",
           "ANSIBLE_REMOTE_TMP": REMOTE_TMP, "ANSIBLE_PYTHON_INTERPRETER": GUEST_PYTHON,
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_HOST_KEY_CHECKING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_DEPRECATION_WARNINGS": "false"}

    # The rollout, under load.
    load = Load(work, "rollout")
    log("load started; running the playbook on the host")
    started = time.monotonic()
    # The host writes the output there as it comes (work is on the host's
    # /tmp, which the guest shares), so a run cut short shows how far it got.
    playbook_log = os.path.join(work, "playbook.log")
    cmd = [ON_HOST, "--output", playbook_log, "--cwd", REPO]
    cmd += ["--env=%s=%s" % item for item in sorted(env.items())]
    cmd += ["--", os.path.join(os.path.dirname(PYTHON), "ansible-playbook"), "-i", inv,
            os.path.join(REPO, "playbooks", "rolling_deploy.yml"), "-e", json.dumps({"lab_install_seconds": 0})]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=800, check=False)
    with open(playbook_log) as handle:
        output = handle.read() + proc.stdout + proc.stderr
    result["rollout"] = {"rc": proc.returncode, "seconds": round(time.monotonic() - started, 1),
                         "output": output, "load": load.stop(),
                         "versions": {"rs%d" % n: version_of(n) for n in range(1, count + 1)},
                         "weights": ipvs_weights()}

    log("rollout rc=%s in %ss" % (proc.returncode, result["rollout"]["seconds"]))
    # The same restart of rs1 (v2 -> v3) without draining: failures.
    load = Load(work, "naive")
    pidfile = os.path.join(work, "rs1.pid")
    sh("ip", "netns", "exec", "rs1", PYTHON, CTL, "stop", "--pidfile", pidfile)
    time.sleep(1.5)
    sh("ip", "netns", "exec", "rs1", PYTHON, CTL, "start", "--bind", rs_address(1), "--port", str(PORT),
       "--name", "rs1", "--version", "v3", "--pidfile", pidfile)
    time.sleep(0.5)
    result["naive"] = {"load": load.stop()}

    for n in range(1, count + 1):
        subprocess.run(["ip", "netns", "exec", "rs%d" % n, PYTHON, CTL, "stop", "--pidfile",
                        os.path.join(work, "rs%d.pid" % n)], capture_output=True, check=False)
    with open(os.path.join(work, "result.json"), "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1])
