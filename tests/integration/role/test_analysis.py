# -*- coding: utf-8 -*-
"""The analysis gate (rolling_deploy_analysis), under load, in one run: web1's
good v2 passes it; web2's v2 answers every 10th request with a 500 - it passes
its health check, only its traffic shows it - so the gate fails it at step
analysis (AnalysisFailedError), rolling_deploy_on_failure=rollback drains it
(it is in rotation), puts v1 back and restores it, and the rollout stops
there.  No request fails but the 500s the bad version itself answered.
The same run writes its HTML report (rolling_deploy_report), and headless
Chromium shows it: a lane per host, web2's failure marked with its reason,
the gate's counters beside the lanes it judged."""

from conftest import ROLLBACK_TASKS, admin_states, check_timeline, playbook, render_report

GATE = {"max_error_rate": 0.05, "max_error_ratio": 3}


def test_analysis_gate_passes_a_good_version_and_rolls_back_a_bad_one(lab, tmp_path):
    report = tmp_path / "report.html"
    lab.start_load()
    run = playbook(lab, extra_vars={
        "lab_versions": {"web2": "v2-errors10"},
        "rolling_deploy_soak_seconds": 3,
        "rolling_deploy_analysis": GATE,
        "rolling_deploy_on_failure": "rollback",
        "rolling_deploy_rollback_tasks_file": ROLLBACK_TASKS,
        "rolling_deploy_rollback_health_body": "^OK v1$",
        "rolling_deploy_report": str(report),
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
    check_report(report, tmp_path, run, phases)


def check_report(report, workdir, run, phases):
    """The rollout's report, as headless Chromium lays it out and shows it."""
    assert oct(report.stat().st_mode & 0o777) == "0o644"
    seconds, page = render_report(str(report), workdir)
    print("Chromium rendered the report in %.2f s" % seconds)
    assert page["title"].startswith("Rollout report: "), page["title"]
    assert "Batch 1" in page["text"] and "Batch 2" in page["text"], page["text"]
    # One lane per host of the play, one under the other, in batch order;
    # the hosts the stopped rollout did not touch last, saying why.
    lanes = dict((lane["data"]["node"], lane) for lane in page["lanes"])
    assert [lane["data"]["node"] for lane in page["lanes"]] == ["web1", "web2", "web3", "web4"], page["lanes"]
    assert all(lane["visible"] for lane in page["lanes"])
    for upper, lower in zip(page["lanes"], page["lanes"][1:]):
        assert upper["bottom"] <= lower["top"] + 0.5, (upper["data"], lower["data"])
    assert [(n, lanes[n]["data"]["batch"], lanes[n]["data"]["result"]) for n in lanes] == [
        ("web1", "1", "done"), ("web2", "2", "failed"), ("web3", "", "not run"), ("web4", "", "not run")]
    assert "not touching web3" in lanes["web3"]["text"], lanes["web3"]["text"]
    # Every phase of the timeline is a visible bar in its lane's track, in
    # time order, left to right, on the common axis (web2's start right of web1's).
    for node in ("web1", "web2"):
        track, bars = lanes[node]["track"], lanes[node]["bars"]
        assert [b["data"]["phase"] for b in bars] == [p["phase"] for p in phases[node]], (node, bars)
        for drawn in bars:
            assert drawn["visible"], drawn
            assert track["left"] - 0.5 <= drawn["left"] <= drawn["right"] <= track["right"] + 0.5, (track, drawn)
            assert drawn["background"] not in ("", "rgba(0, 0, 0, 0)"), drawn
        for before, after in zip(bars, bars[1:]):
            assert before["left"] <= after["left"], (before, after)
    assert lanes["web1"]["bars"][-1]["right"] <= lanes["web2"]["bars"][0]["left"] + 0.5
    # web2: its failed soak is marked - hatched bar, a cross on the track, the reason in words.
    failed = [b for b in lanes["web2"]["bars"] if "failed" in b["classes"]]
    assert [b["data"]["phase"] for b in failed] == ["soak"], failed
    marker = lanes["web2"]["markers"]
    assert len(marker) == 1 and marker[0]["visible"] and marker[0]["data"]["phase"] == "soak", marker
    reason = lanes["web2"]["failures"]
    assert len(reason) == 1 and reason[0]["visible"], reason
    assert "soak failed at step analysis (AnalysisFailedError)" in reason[0]["text"], reason[0]["text"]
    assert run.timings["web2"]["msg"].split(":")[0] in reason[0]["text"], (run.timings["web2"]["msg"], reason)
    assert not lanes["web1"]["markers"] and not lanes["web1"]["failures"]
    # The gate's verdict and counters, beside the lanes it judged, as recorded.
    for node, verdict in (("web1", "pass"), ("web2", "fail")):
        cell = lanes[node]["counters"]
        counted = run.timings[node]["analysis"]["node"]
        assert cell["visible"] and cell["left"] >= lanes[node]["track"]["right"], cell
        assert cell["data"]["verdict"] == verdict and verdict in cell["text"], cell
        assert cell["values"]["requests"] == str(counted["requests"]), (cell, counted)
        assert cell["values"]["responses_5xx"] == str(counted["responses_5xx"]), (cell, counted)
        assert cell["values"]["errors"] == str(counted["errors"]), (cell, counted)
    assert int(lanes["web2"]["counters"]["values"]["responses_5xx"]) >= 1
    assert "verdict" not in lanes["web3"]["counters"]["data"]
