# -*- coding: utf-8 -*-
"""Fixtures for the F5 integration tests: the F5 emulator (lab/f5_emulator) on
127.0.0.1 with a free port and its own self-signed certificate, seeded with
pools in two partitions, a folder, a route domain and IPv6 members.

No BIG-IP is reachable: these tests run against the emulator, which is built
from F5's documentation and public captures of real devices.
"""
import json
import os
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
for path in (str(ROOT), str(HERE.parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

from lab.f5_emulator import F5Emulator  # noqa: E402  pylint: disable=wrong-import-position
import helpers  # noqa: E402  pylint: disable=wrong-import-position

SEED = {
    "partitions": ["Common", {"name": "DMZ", "default_route_domain": 2}],
    "folders": ["/Common/app"],
    "nodes": [{"name": "web9", "address": "10.0.0.9"}],
    "pools": [
        {"name": "web", "members": [{"name": "10.0.0.1:80"}, {"name": "10.0.0.2:80"}, {"name": "10.0.0.3:80"}]},
        {"name": "api", "members": [{"name": "10.0.0.1:80"}, {"name": "10.0.0.2:80"}]},
        {"name": "solo", "members": [{"name": "10.0.0.5:80"}]},
        {"name": "empty"},
        {"name": "web", "subPath": "app", "members": [{"name": "10.0.0.1:80"}, {"name": "10.0.0.2:80"}]},
        {"name": "dmzweb", "partition": "DMZ", "members": [
            {"name": "10.0.0.3%2:80", "address": "10.0.0.3%2"},
            {"name": "10.0.0.4%2:80", "address": "10.0.0.4%2"}]},
        {"name": "web6", "members": [{"name": "2001:db8::10.443", "address": "2001:db8::10"},
                                     {"name": "2001:db8::11.443", "address": "2001:db8::11"}]},
    ],
}


@pytest.fixture
def token_dir(tmp_path, monkeypatch):
    """This test's own token cache (token_cache is on by default): module runs
    are processes that inherit the variable."""
    directory = tmp_path / "f5-tokens"
    monkeypatch.setenv("GENTLE_LB_F5_TOKEN_DIR", str(directory))
    return directory


def cached_tokens(directory):
    found = set()
    for path in directory.glob("*.json") if directory.exists() else []:
        found.add(json.loads(path.read_text())["token"])
    return found


def live_tokens(emulator):
    now = time.time()
    return set(t["token"] for t in emulator.tokens()["tokens"] if t["expirationMicros"] / 1e6 > now)


@pytest.fixture
def f5(token_dir):
    """A fresh emulator per test.  Afterwards the only login tokens alive are the
    ones the token cache keeps (at most one per device and user): every other
    token a run made was deleted, whether the run succeeded or failed."""
    emulator = F5Emulator(seed=SEED, drain_rate=1000)
    emulator.start()
    try:
        yield emulator
        alive, kept = live_tokens(emulator), cached_tokens(token_dir)
    finally:
        emulator.stop()
    assert alive <= kept, "%d login token(s) left alive on the emulator that no cache keeps" % len(alive - kept)


def conn(f5, **extra):
    args = dict(server="127.0.0.1", server_port=f5.port, user="admin", password="admin", validate_certs=False)
    args.update(extra)
    return args


def member(f5, pool, name):
    """The emulator's own view of a member (stored session/state, live connections), or None."""
    pool = pool if pool.startswith("/") else "/Common/" + pool
    found = [m for m in f5.members(pool=pool) if m["name"] == name]
    return found[0] if found else None


def stored(f5, pool, name):
    """(session, state) as the device stores them, or None when the member does not exist."""
    found = member(f5, pool, name)
    return (found["session"], found["state"]) if found else None


def writes(f5):
    """Configuration writes the emulator saw (login/logout are not configuration)."""
    return [(e["method"], e["path"]) for e in f5.requests()["entries"]
            if e["method"] != "GET" and e["path"].startswith(("/mgmt/tm/", "/iControl/"))]


def info(f5, **args):
    result = helpers.run_module("f5_pool_member_info", conn(f5, **args))
    assert not result.failed, result
    return dict(((m["container"], m["name"]), m) for m in result["members"])


def run(f5, check=False, diff=False, env=None, **args):
    return helpers.run_module("f5_pool_member", conn(f5, **args), check=check, diff=diff, env=env)


def warnings(result):
    """The warnings' texts (ansible-core 2.19+ returns them as structured events)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


ENABLED = ("user-enabled", "user-up")
DISABLED = ("user-disabled", "user-up")
FORCED = ("user-disabled", "user-down")


@pytest.fixture
def clean_env(monkeypatch):
    """No F5_* or CA-bundle variables from the caller's environment."""
    for var in list(os.environ):
        if var.startswith("F5_") or var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(var, raising=False)
