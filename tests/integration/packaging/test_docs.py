# -*- coding: utf-8 -*-
"""The shipped docs say true things:

* every message quoted in docs/troubleshooting.md is one the code prints: it
  matches a message format in plugins/ (or is one of the few ansible-core
  messages listed here);
* a sample of errors, triggered for real against a real HAProxy, the F5
  emulator and the host's ipvsadm, is each covered by an entry of that page.

(Links are checked by test_doc_links.py.)
"""

import ast
import glob
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import REPO, run_module  # noqa: E402

sys.path.insert(0, REPO)
from lab.f5_emulator import F5Emulator  # noqa: E402
from lab.haproxy_lab import HAProxyLab  # noqa: E402

DOCS = os.path.join(REPO, "docs")
TROUBLESHOOTING = os.path.join(DOCS, "troubleshooting.md")
# Messages of ansible-core itself that the page explains (module_defaults, missing libraries).
ANSIBLE_CORE = ("Unsupported parameters for (gentle.lb.", "Failed to import the required Python library (")
# A format whose fixed text is shorter than this says too little to identify a message.
MIN_LITERAL = 15
CONVERSION = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[sdrgfi]")


def message_formats():
    """Every one-line string the plugins build messages from: the left side of
    each ``"..." % (...)`` (its conversions become wildcards) and every other
    string literal, as {text: regex}.  A conversion may produce nothing (a
    plural "s"), so its wildcard matches the empty string too."""
    templated, plain = set(), set()
    for path in glob.glob(os.path.join(REPO, "plugins", "module_utils", "*.py")) + \
            glob.glob(os.path.join(REPO, "plugins", "modules", "*.py")):
        with open(path) as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and \
                    isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
                templated.add(node.left.value)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                plain.add(node.value)
    formats = {}
    for text in templated | (plain - templated):
        if "\n" in text:
            continue                                    # documentation, not a message
        pieces = CONVERSION.split(text) if text in templated else [text]
        if text in templated:
            pieces = [p.replace("%%", "%") for p in pieces]
        if len("".join(pieces)) < MIN_LITERAL:
            continue
        formats[text] = re.compile("(.*?)".join(re.escape(p) for p in pieces), re.S)
    return formats


FORMATS = message_formats()


def formats_matching(message):
    """The formats that produce ``message`` -- as the whole message, or as its
    start (a reason in parentheses follows) or its end (ansible-core's own
    text before it)."""
    found = []
    for text, regex in FORMATS.items():
        for match in regex.finditer(message):
            if match.start() == 0 or match.end() == len(message):
                found.append(text)
                break
    return found


def documented_messages():
    with open(TROUBLESHOOTING) as handle:
        return re.findall(r"^```text\n(.*?)\n```$", handle.read(), re.M | re.S)


def test_every_documented_message_is_printed_by_the_code():
    messages = documented_messages()
    assert len(messages) > 40
    for message in messages:
        assert "\n" not in message, "one message per block: %r" % message
        assert formats_matching(message) or message.startswith(ANSIBLE_CORE), \
            "not a message gentle.lb prints (reworded since?): %s" % message


def documented_formats():
    covered = set()
    for message in documented_messages():
        covered.update(formats_matching(message))
    return covered


@pytest.fixture(scope="module")
def triggered():
    """Real messages: {label: msg} from modules run against the labs."""
    msgs = {}

    def record(label, module, args, env=None):
        result = run_module(module, args, env=env)
        assert result.failed, (label, result)
        msgs[label] = result["msg"]

    with HAProxyLab(version="2.6", backends={
            "app": {"servers": ["web1 check", "web2 check", "web3 check"]},
            "static": {"balance": "source", "servers": ["s1 check", "s2 check"]}}) as lab:
        lab.wait_servers_up()
        sock = dict(socket=lab.admin_socket)
        stats = dict(stats_url=lab.stats_url, stats_user=lab.stats_user, stats_password=lab.stats_password)
        record("no socket file", "haproxy_member_info", dict(socket=os.path.join(lab.workdir, "nosuch.sock")))
        record("unknown backend", "haproxy_member_info", dict(sock, backend="nosuch"))
        record("unknown server", "haproxy_member", dict(sock, backend=["app"], server="web9", state="drained"))
        record("bad name", "haproxy_member", dict(sock, server="web1;x", state="drained"))
        record("weight range", "haproxy_member", dict(sock, server="web1", state="present", weight=300))
        record("static weight", "haproxy_member", dict(sock, backend=["static"], server="s1", weight=5))
        record("guard", "haproxy_member", dict(sock, backend=["app"], server="web1", state="drained", min_active=3))
        record("operator level", "haproxy_member", dict(socket=lab.operator_socket, server="web1", state="drained"))
        record("stats 401", "haproxy_member_info", dict(stats_url=lab.stats_url))
        record("stats read-only", "haproxy_member", dict(stats, stats_url=lab.stats_url_readonly, server="web1",
                                                         state="drained"))
        record("stats weight", "haproxy_member", dict(stats, server="web1", weight=2))
    with F5Emulator(seed={"pools": [{"name": "web", "members": [{"name": "10.0.0.1:80"}, {"name": "10.0.0.2:80"}]}]},
                    drain_rate=1000) as f5:
        conn = dict(server="127.0.0.1", server_port=f5.port, user="admin", password="admin", validate_certs=False)
        record("f5 server not set", "f5_pool_member_info", {}, env={"F5_SERVER": ""})
        record("f5 login", "f5_pool_member_info", dict(conn, password="wrong"))
        record("f5 tls", "f5_pool_member_info", dict(conn, validate_certs=True), env={"REQUESTS_CA_BUNDLE": ""})
        record("f5 pool", "f5_pool_member_info", dict(conn, pool=["nosuch"]))
        record("f5 member", "f5_pool_member", dict(conn, pool=["web"], address="10.0.0.9", state="drained"))
        record("f5 ratio", "f5_pool_member", dict(conn, pool=["web"], name="10.0.0.1:80", weight=0))
        record("f5 soap weight", "f5_pool_member", dict(conn, name="10.0.0.1:80", weight=2, transport="soap"))
    record("ipvsadm missing", "ipvs_member_info", {}, env={"PATH": "/nonexistent"})
    record("ipvs weight 0", "ipvs_member", dict(virtual_service=["tcp:10.0.0.1:80"], address="10.0.0.2", weight=0))
    record("ipvs force", "ipvs_member", dict(virtual_service=["tcp:10.0.0.1:80"], address="10.0.0.2",
                                             state="drained", on_timeout="force"))
    record("ipvs spec", "ipvs_member", dict(virtual_service=["10.0.0.1:80"], address="10.0.0.2", state="drained"))
    return msgs


def test_triggered_errors_are_documented(triggered):
    covered = documented_formats()
    missing = []
    for label, message in sorted(triggered.items()):
        produced_by = formats_matching(message)
        assert produced_by, "%s: no message format in plugins/ matches %r" % (label, message)
        if not covered.intersection(produced_by):
            missing.append("%s: %s" % (label, message))
    assert not missing, "not in docs/troubleshooting.md:\n" + "\n".join(missing)
