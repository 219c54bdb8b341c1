# -*- coding: utf-8 -*-
"""The analysis gate (rolling_deploy_analysis), under load, in one run: web1's
good v2 passes it; web2's v2 answers every 10th request with a 500 - it passes
its health check, only its traffic shows it - so the gate fails it at step
analysis (AnalysisFailedError), rolling_deploy_on_failure=rollback drains it
(it is in rotation), puts v1 back and restores it, and the rollout stops
there.  No request fails but the 500s the bad version itself answered."""

from conftest import ROLLBACK_TASKS, admin_states, check_timeline, playbook

GATE = {"max_error_rate": 0.05, "max_error_ratio": 3}


def test_analysis_gate_passes_a_good_version_and_rolls_back_a_bad_one(lab):
    lab.start_load()
    run = playbook(lab, extra_vars={
        "lab_versions": {"web2": "v2-errors10"},
        "rolling_deploy_soak_seconds": 3,
        "rolling_deploy_analysis": GATE,
        "rolling_deploy_on_failure": "rollback",
        "rolling_deploy_rollback_tasks_file": ROLLBACK_TASKS,
        "rolling_deploy_rollback_health_body": "^OK v1$",
    })
    load = lab.stop_load()

    assert run.rc != 0, run
    # web1: the good version passed the gate, its verdict and counters recorded.
    good = run.timings["web1"]
    assert good["result"] == "done", good
    assert good["analysis"]["verdict"] == "pass", good["analysis"]
    assert good["analysis"]["node"]["requests"] >= 20 and good["analysis"]["node"]["errors"] == 0, good["analysis"]
    # web2: caught by the gate, rolled back (drained first), back on v1 and in rotation.
    bad = run.timings["web2"]
    assert bad["result"] == "failed" and bad["step"] == "analysis", bad
    assert bad["error_type"] == "AnalysisFailedError", bad
    assert bad["analysis"]["verdict"] == "fail" and bad["analysis"]["node"]["responses_5xx"] >= 1, bad["analysis"]
    assert "rolling_deploy: web2 failed at step analysis (see rolling_deploy_analysis" in run.output, run
    assert "it was rolled back (rolling_deploy_rollback_tasks_file), passed the health gate" in run.output, run
    # The rollout stopped: web3 and web4 were not touched.
    assert "web3" not in run.timings and "web4" not in run.timings
    assert lab.versions() == {"web1": "v2", "web2": "v1", "web3": "v1", "web4": "v1"}
    assert admin_states(lab) == dict.fromkeys(["web1", "web2", "web3", "web4"], "READY")
    assert lab.states()["web2"] == "UP"
    # Under load, nothing failed but the bad version's own 500s.
    assert load["sent"] > 200, load["line"]
    others = dict((kind, n) for kind, n in load["errors"].items() if kind != "http_500")
    assert others == {}, "%s\n%s" % (load["line"], load["failure_samples"])
    assert load["failed"] == load["errors"].get("http_500", 0), load["line"]
    phases = check_timeline(run, {"web1": 1, "web2": 2})
    soak1 = [p for p in phases["web1"] if p["phase"] == "soak"]
    assert soak1 and soak1[0]["analysis"]["verdict"] == "pass", phases["web1"]
    names = [(p["phase"], p["result"]) for p in phases["web2"]]
    assert ("soak", "failed") in names and names[-4:] == [
        ("rollback_drain", "ok"), ("rollback", "ok"), ("rollback_health", "ok"), ("rollback_restore", "ok")], names
    soak2 = [p for p in phases["web2"] if p["phase"] == "soak"][0]
    assert soak2["step"] == "analysis" and soak2["error_type"] == "AnalysisFailedError", soak2
    assert soak2["analysis"]["verdict"] == "fail", soak2
    # The rollback drained web2 before its rollback tasks restarted it.
    drain = [p for p in phases["web2"] if p["phase"] == "rollback_drain"][0]
    rollback = [p for p in phases["web2"] if p["phase"] == "rollback"][0]
    assert drain["ended"] <= rollback["started"], (drain, rollback)
