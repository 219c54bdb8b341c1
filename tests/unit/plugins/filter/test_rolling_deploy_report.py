# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rolling_deploy_report_html: the play's timeline as one HTML page - a lane
per host, its phases as bars on one time axis, failures marked with their
reasons, the analysis gate's counters beside the lanes it judged, every text
from the timeline escaped, nothing loaded from anywhere."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from html.parser import HTMLParser

from ansible_collections.gentle.lb.plugins.filter.rolling_deploy import FilterModule, rolling_deploy_report_html

T0 = 1764750000.0       # 2025-12-03T08:20:00Z
HOSTILE = '<img src=x onerror="alert(1)">web2&co'
REASON = 'analysis gate: </p><script>alert("x")</script> 5xx & more'
GOOD = dict(requests=120, responses_5xx=0, errors=0, error_rate=0.0, response_time_ms=3.2)
BAD = dict(requests=118, responses_5xx=12, errors=12, error_rate=0.101695, response_time_ms=4.0)


def phase(host, name, start, end, batch, result="ok", **extra):
    entry = dict(host=host, phase=name, started=T0 + start, ended=T0 + end, batch=batch, round=1, result=result,
                 step=None, error_type=None, msg=None)
    entry.update(extra)
    return entry


def rollout():
    """web1 passes the gate in batch 1; the hostile-named host fails it in
    batch 2 and is rolled back; web3 is not touched."""
    timeline = [phase("web1", "drain", 0, 2, 1), phase("web1", "deploy", 2, 7, 1), phase("web1", "health", 7, 8, 1),
                phase("web1", "restore", 8, 9, 1),
                phase("web1", "soak", 9, 12, 1, analysis=dict(verdict="pass", reasons=[], node=GOOD)),
                phase(HOSTILE, "drain", 13, 14, 2), phase(HOSTILE, "deploy", 14, 19, 2),
                phase(HOSTILE, "health", 19, 20, 2), phase(HOSTILE, "restore", 20, 21, 2),
                phase(HOSTILE, "soak", 21, 24, 2, result="failed", step="analysis", error_type="AnalysisFailedError",
                      msg=REASON, analysis=dict(verdict="fail", reasons=["lb1: app: too many"], node=BAD)),
                phase(HOSTILE, "rollback_drain", 24, 25, 2), phase(HOSTILE, "rollback", 25, 29, 2),
                phase(HOSTILE, "rollback_health", 29, 30, 2), phase(HOSTILE, "rollback_restore", 30, 40, 2)]
    timings = {"web1": dict(result="done"), HOSTILE: dict(result="failed", step="analysis"),
               "web3": {"result": "not run", "msg": "not touching web3: the rollout stopped at " + HOSTILE}}
    return timeline, timings


class Node(object):
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children, self.texts = tag, dict(attrs), parent, [], []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self):
        return "".join(self.texts[:1] + [c.text() + t for c, t in zip(self.children, self.texts[1:])]) \
            if self.children else "".join(self.texts)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, cls=None, **data):
        """The elements with class ``cls`` and data-<key>=value attributes."""
        return [n for n in self.walk() if (cls is None or cls in n.classes)
                and all(n.attrs.get("data-" + k.replace("_", "-")) == v for k, v in data.items())]


class Tree(HTMLParser):
    VOID = {"meta", "br", "img", "link", "input", "hr"}

    def __init__(self, text):
        HTMLParser.__init__(self)
        self.root = self.node = Node("#document", {})
        self.node.texts.append("")
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.node)
        self.node.children.append(node)
        self.node.texts.append("")
        if tag not in self.VOID:
            node.texts.append("")
            self.node = node

    def handle_endtag(self, tag):
        assert self.node.tag == tag, "</%s> closes <%s>" % (tag, self.node.tag)
        self.node = self.node.parent

    def handle_data(self, data):
        self.node.texts[-1] += data


def render(timeline=None, timings=None, title=None):
    if timeline is None:
        timeline, timings = rollout()
    text = rolling_deploy_report_html(timeline, timings, title)
    return text, Tree(text).root


def test_one_lane_per_host_by_batch_with_the_hosts_not_run_last():
    _text, page = render()
    lanes = page.find("lane")
    assert [lane.attrs["data-node"] for lane in lanes] == ["web1", HOSTILE, "web3"]
    assert [(lane.attrs["data-batch"], lane.attrs["data-result"]) for lane in lanes] == [
        ("1", "done"), ("2", "failed"), ("", "not run")]
    sections = page.find("batch")
    assert [s.attrs["data-batch"] for s in sections] == ["1", "2", ""]
    assert "batch 2" in lanes[1].find("meta")[0].text()
    assert "not touching web3" in lanes[2].text()


def test_every_phase_is_a_bar_on_the_common_axis():
    _text, page = render()
    bars = page.find("bar", node="web1")
    assert [b.attrs["data-phase"] for b in bars] == ["drain", "deploy", "health", "restore", "soak"]
    assert [b.attrs["data-node"] for b in page.find("bar", phase="rollback_restore")] == [HOSTILE]
    # The axis runs from the first start (0 s) to the last end (40 s).
    places = dict((b.attrs["data-phase"], b.attrs["style"]) for b in bars)
    assert "left:0.000%;width:5.000%" in places["drain"], places
    assert "left:5.000%;width:12.500%" in places["deploy"], places
    last = page.find("bar", phase="rollback_restore")[0].attrs["style"]
    assert "left:75.000%;width:25.000%" in last, last
    assert "phase-soak" in bars[-1].classes and bars[-1].attrs["data-seconds"] == "3.000"
    ticks = [t.text() for t in page.find("tick")]
    assert ticks[0] == "+0 s" and ticks[-1] == "+40 s" and len(ticks) <= 11, ticks
    assert [k.attrs["data-phase"] for k in page.find("key") if "data-phase" in k.attrs][:3] == [
        "drain", "deploy", "health"]


def test_a_failed_phase_is_marked_with_its_reason():
    _text, page = render()
    failed = page.find("failed")
    assert [n.attrs.get("data-phase") for n in failed if n.tag == "div" and "bar" in n.classes] == ["soak"]
    assert [n.attrs["data-node"] for n in page.find("lane") if "failed" in n.classes] == [HOSTILE]
    markers = page.find("marker", node=HOSTILE)
    assert len(markers) == 1 and markers[0].attrs["data-phase"] == "soak"
    assert "left:60.000%" in markers[0].attrs["style"]        # where the soak ended
    reason = page.find("failure", node=HOSTILE)
    assert len(reason) == 1
    assert reason[0].attrs["data-step"] == "analysis" and reason[0].attrs["data-error-type"] == "AnalysisFailedError"
    assert REASON in reason[0].text() and "failed at step analysis (AnalysisFailedError)" in reason[0].text()
    assert not page.find("failure", node="web1") and not page.find("marker", node="web1")


def test_the_analysis_counters_are_beside_the_lanes_it_judged():
    _text, page = render()
    good = page.find("counters", node="web1")[0]
    assert good.attrs["data-verdict"] == "pass"
    assert dict((dd.attrs["data-counter"], dd.text()) for dd in good.walk() if dd.tag == "dd") == {
        "requests": "120", "responses_5xx": "0", "errors": "0", "error_rate": "0.00%", "response_time_ms": "3.2"}
    bad = page.find("counters", node=HOSTILE)[0]
    assert bad.attrs["data-verdict"] == "fail" and "fail" in bad.find("verdict")[0].text()
    counted = dict((dd.attrs["data-counter"], (dd.text(), "bad" in dd.classes)) for dd in bad.walk() if dd.tag == "dd")
    assert counted["responses_5xx"] == ("12", True) and counted["errors"] == ("12", True)
    assert counted["error_rate"] == ("10.17%", False) and counted["requests"] == ("118", False)
    assert "data-verdict" not in page.find("counters", node="web3")[0].attrs      # no gate: an empty cell


def test_a_no_data_verdict_says_why():
    analysis = dict(verdict="no_data", reasons=["fewer than 20 requests"], node=None)
    timeline = [phase("web1", "soak", 0, 3, 1, analysis=analysis)]
    _text, page = render(timeline, {})
    cell = page.find("counters", node="web1")[0]
    assert cell.attrs["data-verdict"] == "no_data" and "fewer than 20 requests" in cell.text()
    assert not [n for n in cell.walk() if n.tag == "dd"]


def test_every_text_from_the_timeline_is_escaped():
    text, page = render(title="<i>rollout</i>")
    # Nothing of the hostile texts became markup: no script, no image, no
    # element the filter did not write.
    assert not [n for n in page.walk() if n.tag in ("script", "img", "i")]
    assert "<script" not in text and "<img" not in text and "onerror=\"" not in text
    assert page.find("lane", node=HOSTILE)[0].find("node")[0].text() == HOSTILE
    assert [n.text() for n in page.walk() if n.tag == "title"] == ["<i>rollout</i>"]
    # A hostile phase name is escaped too, and its class keeps only plain words.
    odd = [phase("web1", 'x" onclick="y', 0, 1, 1)]
    text, page = render(odd, {})
    drawn = page.find("bar", node="web1")[0]
    assert drawn.attrs["data-phase"] == 'x" onclick="y' and "onclick" not in drawn.attrs
    assert "phase-x-onclick-y" in drawn.classes


def test_self_contained_no_script_no_external_url():
    text, page = render()
    assert text.startswith("<!DOCTYPE html>")
    elements = list(page.walk())
    assert not [n.tag for n in elements if n.tag in ("script", "link", "img", "iframe", "object", "embed")]
    assert not [n.attrs for n in elements if set(n.attrs) & {"src", "href", "srcset", "action"}
                or any(k.startswith("on") for k in n.attrs)]
    styles = [n.text() for n in elements if n.tag == "style"] + [n.attrs.get("style") or "" for n in elements]
    assert not [s for s in styles if re.search(r"url\(|@import|https?:", s, re.I)]


def test_check_mode_and_an_empty_timeline():
    timeline = [phase("web1", "drain", 0, 0.001, 1, check_mode=True)]
    text, page = render(timeline, {"web1": {"result": "done"}, "web2": {}})
    assert "check mode" in page.find("check-mode")[0].text()
    assert [lane.attrs["data-node"] for lane in page.find("lane")] == ["web1", "web2"]
    text, page = render([], {})
    assert "no phase recorded" in text and not page.find("lane")


def test_the_filter_is_registered():
    assert FilterModule().filters()["rolling_deploy_report_html"] is rolling_deploy_report_html
