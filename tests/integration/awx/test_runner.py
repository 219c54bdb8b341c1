# -*- coding: utf-8 -*-
"""playbooks/rolling_deploy.yml through ``ansible-runner run``, the engine AWX and
AAP run job templates with, against the rolling lab (a real HAProxy and two app
instances, lab/rolling_lab.py): the job's artifacts are what an AWX job shows.

The private data directory is laid out as AWX lays it out for a job: the
project checkout in ``project/``, the inventory in ``inventory/``, the survey
answers in ``env/extravars``, the environment in ``env/envvars``.  Read
afterwards: ``artifacts/<ident>/rc`` and ``status``, the job events in
``job_events/`` (the runner_on_ok / runner_on_failed / ... events AWX stores
and shows per task and host), and the ``set_stats`` data, which AWX saves as
the job's artifacts, from the ``artifact_data`` of the ``playbook_on_stats`` event.
"""

import glob
import json
import os
import shutil
import subprocess

import pytest
import yaml

from awx_credentials import REPO, render_injectors
from helpers import VENV_BIN, ensure_collection_link
from lab.rolling_lab import RollingLab

HOSTS = ["web1", "web2"]
STEPS = ("drain", "deploy", "health", "restore", "total")
# The role makes every drain and restore through gentle.lb.member (which runs
# gentle.lb.haproxy_member for these bindings): one call per balancer and
# round, made once for the round (run_once), one loop item per call.
MEMBER_ACTION = "gentle.lb.member"


class Job(object):
    """One ansible-runner job and its artifacts."""

    def __init__(self, pdd, ident, proc):
        self.artifacts = pdd / "artifacts" / ident
        self.proc = proc
        self.events = []
        for path in glob.glob(str(self.artifacts / "job_events" / "*.json")):
            with open(path) as handle:
                self.events.append(json.load(handle))
        self.events.sort(key=lambda e: e["counter"])

    def read(self, name):
        with open(str(self.artifacts / name)) as handle:
            return handle.read().strip()

    def of(self, kind, host=None, action=None):
        return [e for e in self.events if e["event"] == kind
                and (host is None or e["event_data"].get("host") == host)
                and (action is None or e["event_data"].get("resolved_action") == action)]

    @property
    def stats(self):
        found = self.of("playbook_on_stats")
        assert len(found) == 1, self
        return found[0]["event_data"]

    def member_calls(self, host, delegate_to):
        """[(counter, state the call left the host's server in, changed)] for the
        balancer calls of the role that named ``host``'s server (delegated to
        ``delegate_to``), whichever host of the round made them."""
        calls = []
        for event in self.of("runner_on_ok", action=MEMBER_ACTION):
            for item in event["event_data"]["res"].get("results", []):
                mine = [m for m in item.get("members", []) if m["name"] == host]
                if not mine:
                    continue
                assert item["_ansible_delegated_vars"]["ansible_delegated_host"] == delegate_to
                assert [(m["container"], m["name"]) for m in mine] == [("app", host)], item
                calls.append((event["counter"], mine[0]["state"], item["changed"]))
        return calls

    def __repr__(self):
        stdout = self.read("stdout") if (self.artifacts / "stdout").exists() else ""
        return "ansible-runner rc=%s\n%s\n%s\n%s" % (self.proc.returncode, self.proc.stdout[-3000:],
                                                     self.proc.stderr[-3000:], stdout[-6000:])


def admin_states(lab):
    """{server: READY, DRAIN or MAINT} from HAProxy's srv_admin_state bits."""
    result = {}
    for row in lab.haproxy.servers_state("app"):
        admin = int(row["srv_admin_state"])
        result[row["srv_name"]] = "MAINT" if admin & 0x67 else ("DRAIN" if admin & 0x18 else "READY")
    return result


def run_job(tmp_path_factory, survey, ident, credential=None):
    """Start a lab, run the job through ansible-runner, stop the lab; return the
    Job with the lab's state afterwards (versions, HAProxy status).
    ``credential(lab)`` gives the environment a credential injects."""
    lab = RollingLab(instances=len(HOSTS))
    lab.start()
    try:
        return job_on(lab, tmp_path_factory, survey, ident, credential)
    finally:
        lab.stop()


def job_on(lab, tmp_path_factory, survey, ident, credential=None):
    """One ansible-runner job against a running lab (see run_job)."""
    pdd = tmp_path_factory.mktemp("runner")
    shutil.copytree(os.path.join(REPO, "playbooks"), str(pdd / "project"))
    (pdd / "inventory").mkdir()
    shutil.copy(lab.inventory, str(pdd / "inventory" / "hosts.yml"))
    (pdd / "env").mkdir()
    (pdd / "env" / "extravars").write_text(json.dumps(survey))
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": ensure_collection_link(),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_NOCOLOR": "1",
    }
    envvars.update(credential(lab) if credential else {})
    (pdd / "env" / "envvars").write_text(json.dumps(envvars))
    # ansible-runner finds ansible-playbook on PATH, as in an EE; nothing of
    # the test run's own Ansible environment leaks into the job.
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH")
    env["PATH"] = VENV_BIN + os.pathsep + os.environ.get("PATH", "")
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-runner"), "run", str(pdd),
                           "-p", "rolling_deploy.yml", "--ident", ident, "-q"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    job = Job(pdd, ident, proc)
    job.versions = lab.versions()
    job.status_in_haproxy = lab.states()
    job.admin = admin_states(lab)
    return job


def haproxy_credential(lab):
    """A credential of docs/awx/credential_type_haproxy_stats.yml for the lab's stats page."""
    return render_injectors("credential_type_haproxy_stats.yml", dict(
        stats_url=lab.haproxy.stats_url, stats_user=lab.haproxy.stats_user,
        stats_password=lab.haproxy.stats_password, validate_certs=True))


@pytest.fixture(scope="module")
def good_job(tmp_path_factory):
    """Survey answers as AWX passes them: serial and min_active are text answers
    ("50%" of two hosts: one per batch; job slicing would run slices in
    parallel instead).
    The binding names no connection: the job's HAProxy credential injects the
    stats page, and the module runs in the execution environment (localhost)."""
    survey = {
        "rolling_deploy_hosts": "app",
        "rolling_deploy_serial": "50%",
        "rolling_deploy_min_active": "50%",      # a text question, so a percentage can be entered
        "rolling_deploy_bindings": [{"type": "haproxy", "delegate_to": "localhost", "backend": "app",
                                     "server": "{{ inventory_hostname }}"}],
    }
    return run_job(tmp_path_factory, survey, "job-1", credential=haproxy_credential)


@pytest.fixture(scope="module")
def broken_job(tmp_path_factory):
    return run_job(tmp_path_factory, {"rolling_deploy_serial": 1, "lab_versions": {"web2": "v2-broken"},
                                      "lab_start_timeout": 2}, "job-2")


def test_successful_job_status_and_rc(good_job):
    assert good_job.proc.returncode == 0, good_job
    assert good_job.read("rc") == "0"
    assert good_job.read("status") == "successful"
    assert good_job.versions == dict.fromkeys(HOSTS, "v2")
    assert good_job.status_in_haproxy == dict.fromkeys(HOSTS, "UP")
    assert good_job.admin == dict.fromkeys(HOSTS, "READY")


def test_successful_job_events(good_job):
    for kind in ("runner_on_failed", "runner_on_unreachable", "runner_item_on_failed"):
        assert good_job.of(kind) == [], good_job
    stats = good_job.stats
    assert stats["failures"] == {} and stats["dark"] == {}
    assert sorted(stats["ok"]) == HOSTS
    # serial "50%" of two hosts: two batches, each a play start.
    assert len(good_job.of("playbook_on_play_start")) == 2

    deployed = {}
    for host in HOSTS:
        # Drained, then back to present, both changing HAProxy (from the EE, through the stats page).
        calls = good_job.member_calls(host, "localhost")
        assert [(state, changed) for _c, state, changed in calls] == [("drained", True), ("present", True)], calls
        deploy = good_job.of("runner_on_ok", host=host, action="ansible.builtin.command")
        assert len(deploy) == 1 and deploy[0]["event_data"]["res"]["changed"] is True
        assert calls[0][0] < deploy[0]["counter"] < calls[1][0], "drain, deploy, restore: in that order"
        deployed[host] = (calls[0][0], calls[1][0])
    # One at a time: web1 is back in rotation before web2 is drained.
    assert deployed["web1"][1] < deployed["web2"][0]


def test_successful_job_set_stats_artifact(good_job):
    timings = good_job.stats["artifact_data"]["rolling_deploy_play_timings"]
    assert sorted(timings) == HOSTS
    for host, entry in timings.items():
        assert entry["result"] == "done" and entry["step"] == "done", (host, entry)
        for step in STEPS:
            assert isinstance(entry[step], (int, float)) and entry[step] >= 0, (host, step, entry)
        assert entry["total"] >= entry["drain"] + entry["deploy"] + entry["restore"] - 0.05, entry


def test_failed_job_status_events_and_artifact(broken_job):
    """web2 deploys a build that does not start: the job fails (AWX shows
    "failed"), the failure is an event on web2's deploy task, and the
    artifact still says what happened to each host."""
    assert broken_job.proc.returncode != 0, broken_job
    assert broken_job.read("rc") == "2"
    assert broken_job.read("status") == "failed"

    failed = broken_job.of("runner_on_failed")
    assert failed, broken_job
    assert set(e["event_data"]["host"] for e in failed) == {"web2"}, [
        (e["event_data"]["host"], e["event_data"]["task"], e["event_data"]["res"].get("msg")) for e in failed]
    assert any(e["event_data"]["resolved_action"] == "ansible.builtin.command" for e in failed)
    assert sorted(broken_job.stats["failures"]) == ["web2"]

    # web2 was drained, and left drained (rolling_deploy_on_failure=leave_drained).
    assert [state for _c, state, _ch in broken_job.member_calls("web2", "lb1")] == ["drained"]
    assert broken_job.admin == {"web1": "READY", "web2": "DRAIN"}
    assert broken_job.status_in_haproxy["web1"] == "UP"
    assert broken_job.versions["web1"] == "v2" and broken_job.versions["web2"] != "v2"

    timings = broken_job.stats["artifact_data"]["rolling_deploy_play_timings"]
    assert timings["web1"]["result"] == "done"
    assert timings["web2"]["result"] == "failed" and timings["web2"]["step"] == "deploy", timings


def handed_on(survey, *jobs):
    """The extra variables AWX gives a workflow node's job: its job template's
    survey answers and the set_stats artifacts of the jobs before it (the
    later job's win)."""
    extra = dict(survey)
    for job in jobs:
        extra.update(job.stats.get("artifact_data") or {})
    return extra


@pytest.fixture(scope="module")
def approval_workflow(tmp_path_factory):
    """docs/awx/workflow_rolling_deploy.yml's shape, under load: the job
    template with approval points after batches 1 and 2 (a survey's text),
    approved twice; each job after an approval is the same template given
    the artifacts of the jobs before it, as AWX hands them on."""
    lab = RollingLab(instances=4)
    lab.start()
    try:
        survey = {"rolling_deploy_serial": "1,2", "rolling_deploy_approval_after": "1,2"}
        lab.start_load()
        jobs = [job_on(lab, tmp_path_factory, survey, "canary")]
        pids = [lab.pids()]
        jobs.append(job_on(lab, tmp_path_factory, handed_on(survey, *jobs), "after-approval-1"))
        pids.append(lab.pids())
        jobs.append(job_on(lab, tmp_path_factory, handed_on(survey, *jobs), "after-approval-2"))
        pids.append(lab.pids())
        return jobs, pids, lab.stop_load()
    finally:
        lab.stop()


def deployed_hosts(job):
    return sorted(e["event_data"]["host"] for e in job.of("runner_on_ok", action="ansible.builtin.command"))


def test_approval_point_ends_the_job_with_success_and_publishes_where_it_stopped(approval_workflow):
    (canary, second, last), pids, load = approval_workflow
    assert canary.proc.returncode == 0 and canary.read("status") == "successful", canary
    assert canary.versions == {"web1": "v2", "web2": "v1", "web3": "v1", "web4": "v1"}
    assert canary.admin == dict.fromkeys(["web1", "web2", "web3", "web4"], "READY")
    assert deployed_hosts(canary) == ["web1"]
    artifacts = canary.stats["artifact_data"]
    assert artifacts["rolling_deploy_resume"] == {"after_batch": 1, "done": ["web1"]}, artifacts
    assert sorted(artifacts["rolling_deploy_play_timings"]) == ["web1"], artifacts
    stdout = canary.read("stdout")
    assert "the rollout stops here for an approval" in stdout, canary


def test_the_job_after_each_approval_resumes_exactly_where_the_last_one_stopped(approval_workflow):
    (canary, second, last), pids, load = approval_workflow
    # Job 2: batch 1 (web1) is skipped as it is, batch 2 (web2, web3) rolled, then the next approval.
    assert second.proc.returncode == 0 and second.read("status") == "successful", second
    assert deployed_hosts(second) == ["web2", "web3"]
    assert second.versions == {"web1": "v2", "web2": "v2", "web3": "v2", "web4": "v1"}
    assert pids[1]["web1"] == pids[0]["web1"], "web1 was restarted by the job after the approval"
    timings = second.stats["artifact_data"]["rolling_deploy_play_timings"]
    # The job's own timings, not the first job's handed on as extra variables.
    assert timings["web1"]["result"] == "skipped" and timings["web1"]["reason"] == "approval", timings
    assert timings["web2"]["result"] == timings["web3"]["result"] == "done", timings
    assert second.stats["artifact_data"]["rolling_deploy_resume"] == {
        "after_batch": 2, "done": ["web1", "web2", "web3"]}
    # Job 3: the last batch, and nothing left to resume for the workflow's later nodes.
    assert last.proc.returncode == 0 and last.read("status") == "successful", last
    assert deployed_hosts(last) == ["web4"]
    assert last.versions == dict.fromkeys(["web1", "web2", "web3", "web4"], "v2")
    assert last.admin == dict.fromkeys(["web1", "web2", "web3", "web4"], "READY")
    assert last.stats["artifact_data"]["rolling_deploy_resume"] == {}
    assert {h: t["result"] for h, t in last.stats["artifact_data"]["rolling_deploy_play_timings"].items()} == {
        "web1": "skipped", "web2": "skipped", "web3": "skipped", "web4": "done"}
    # Across the three jobs and the approvals between them, not one failed request.
    assert load["sent"] > 100 and load["failed"] == 0, load["line"]


def test_the_shipped_workflow_is_the_one_run_here():
    """docs/awx/workflow_rolling_deploy.yml wires what approval_workflow runs:
    the job template, an approval, the same job template; the approval point
    set once, for both jobs, in the workflow's extra variables."""
    with open(os.path.join(REPO, "docs", "awx", "workflow_rolling_deploy.yml")) as handle:
        tasks = yaml.safe_load(handle)[0]["tasks"]
    workflow = [t["awx.awx.workflow_job_template"] for t in tasks if "awx.awx.workflow_job_template" in t]
    assert len(workflow) == 1 and workflow[0]["extra_vars"] == {"rolling_deploy_approval_after": "1"}
    nodes = dict((n["identifier"], n) for n in (
        t["awx.awx.workflow_job_template_node"] for t in tasks if "awx.awx.workflow_job_template_node" in t))
    assert nodes["canary"]["success_nodes"] == ["approve-canary"]
    assert "approval_node" in nodes["approve-canary"] and "unified_job_template" not in nodes["approve-canary"]
    assert nodes["approve-canary"]["success_nodes"] == ["rest"]
    assert nodes["canary"]["unified_job_template"] == nodes["rest"]["unified_job_template"]
    # Children first: every link names a node created before it.
    order = [t["awx.awx.workflow_job_template_node"]["identifier"] for t in tasks
             if "awx.awx.workflow_job_template_node" in t]
    for node in nodes.values():
        for child in node.get("success_nodes", []):
            assert order.index(child) < order.index(node["identifier"]), order
