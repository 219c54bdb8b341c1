"""F5's own bigip_pool_member, unchanged, against the F5 emulator.

If the module that thousands of playbooks use behaves against the emulator
as it is observed to behave against devices -- every state lands, reruns
report no change where the module is idempotent, and its known bugs show up
-- the emulator is faithful enough to test gentle.lb against (reference §8,
§10). The module comes from PyPI's ``ansible`` package in ``.venv-peers``
(``lab/peers/setup.sh``) and runs through the real ``ansible`` command.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.f5_emulator import F5Emulator  # noqa: E402

PEERS = ROOT / ".venv-peers"
ANSIBLE = PEERS / "bin" / "ansible"
MODULE = "f5networks.f5_modules.bigip_pool_member"

pytestmark = pytest.mark.skipif(
    not ANSIBLE.exists(),
    reason=".venv-peers is missing: run lab/peers/setup.sh (make setup does) to install F5's bigip_pool_member")

SEED = {"pools": [
    {"name": "web", "monitor": "/Common/http", "members": [{"name": "10.0.0.1:80", "connections": 10}]},
    {"name": "plain", "members": [{"name": "10.0.0.1:8080"}]},
]}


@pytest.fixture
def f5():
    # As users run it: a separate process on a free port, HTTPS with its own certificate.
    with F5Emulator(seed=SEED, subprocess=True, drain_rate="hold") as emu:
        yield emu


def bigip_pool_member(f5, check=False, **args):
    """One ad-hoc run of the peer module; returns its result dict."""
    args = dict(args, provider=dict(f5.provider, no_f5_teem=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(F5_TELEMETRY_OFF="true", ANSIBLE_PYTHON_INTERPRETER=str(PEERS / "bin" / "python"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_DEPRECATION_WARNINGS="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    cmd = [str(ANSIBLE), "localhost", "-c", "local", "-o", "-m", MODULE, "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("localhost | ")), None)
    assert line, "no result from %s:\n%s\n%s" % (MODULE, proc.stdout, proc.stderr)
    status, result = line[len("localhost | "):].split(" => ", 1)
    result = json.loads(result)
    # The one-line output says FAILED! in its prefix, not in the JSON.
    result.setdefault("failed", status.startswith("FAILED"))
    return result


def admin_state(f5, pool, name):
    """What the device stores (not what it reads back): (session, state), or None."""
    found = [m for m in f5.members(pool=pool) if m["name"] == name]
    return (found[0]["session"], found[0]["state"]) if found else None


def tm_requests(f5):
    """The iControl REST calls of the last run, without login and logout."""
    return [(e["method"], e["path"], e["status"]) for e in f5.requests()["entries"]
            if e["path"].startswith("/mgmt/tm/")]


STATES = [
    ("present", ("user-enabled", "user-up")),
    ("disabled", ("user-disabled", "user-up")),
    ("forced_offline", ("user-disabled", "user-down")),
    ("present", ("user-enabled", "user-up")),
]


@pytest.mark.parametrize("pool", ["web", "plain"], ids=["monitored-pool", "unmonitored-pool"])
def test_each_state_lands_and_a_rerun_changes_nothing(f5, pool):
    member = dict(pool=pool, address="10.0.0.9", port=80)
    for state, stored in STATES:
        f5.reset_requests()
        result = bigip_pool_member(f5, state=state, **member)
        assert result["changed"] is True, (state, result)
        assert admin_state(f5, pool, "10.0.0.9:80") == stored, state
        rerun = bigip_pool_member(f5, state=state, **member)
        assert rerun["changed"] is False, (state, rerun)
        assert not rerun.get("failed"), rerun

    # Check mode plans a change but writes nothing: GETs only.
    f5.reset_requests()
    assert bigip_pool_member(f5, check=True, state="disabled", **member)["changed"] is True
    assert admin_state(f5, pool, "10.0.0.9:80") == ("user-enabled", "user-up")
    assert {method for method, _path, _status in tm_requests(f5)} == {"GET"}

    # absent deletes the member and (no preserve_node) its node, then checks it is gone.
    f5.reset_requests()
    assert bigip_pool_member(f5, state="absent", **member)["changed"] is True
    assert admin_state(f5, pool, "10.0.0.9:80") is None
    assert not [n for n in f5.dump()["nodes"] if n["address"] == "10.0.0.9"]
    calls = tm_requests(f5)
    member_path = "/mgmt/tm/ltm/pool/~Common~%s/members/~Common~10.0.0.9:80" % pool
    node_path = "/mgmt/tm/ltm/node/~Common~10.0.0.9"
    assert [c for c in calls if c[0] != "GET"] == [("DELETE", member_path, 200), ("DELETE", node_path, 200)]
    assert calls[-1] == ("GET", member_path, 404)
    assert bigip_pool_member(f5, state="absent", **member)["changed"] is False


def test_request_sequences_match_a_device(f5):
    member = dict(pool="web", address="10.0.0.9", port=80)
    f5.reset_requests()
    bigip_pool_member(f5, state="present", **member)
    log = f5.requests()["entries"]
    assert [(e["method"], e["path"]) for e in log] == [
        ("POST", "/mgmt/shared/authn/login"),
        ("GET", "/mgmt/tm/sys/"),
        ("GET", "/mgmt/tm/ltm/pool/~Common~web"),
        ("GET", "/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.9:80"),
        ("GET", "/mgmt/tm/ltm/node/~Common~10.0.0.9"),
        ("POST", "/mgmt/tm/ltm/pool/~Common~web/members"),
        ("DELETE", "/mgmt/shared/authz/tokens/" + log[-1]["path"].rsplit("/", 1)[1]),
    ]
    assert f5.tokens()["active"] == 0              # the module logged out

    f5.reset_requests()
    bigip_pool_member(f5, state="disabled", **member)
    calls = [(method, path) for method, path, _status in tm_requests(f5)]
    assert ("GET", "/mgmt/tm/net/tunnels/gre") in calls and ("GET", "/mgmt/tm/net/tunnels/ipip") in calls
    assert calls[-1] == ("PATCH", "/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.9:80")
    assert f5.requests()["entries"][-2]["body"] == {"session": "user-disabled", "state": "user-up"}


def test_forced_offline_on_create_is_not_idempotent_as_on_a_device(f5):
    # f5_modules #2537: a create POSTs only "session": "user-disabled"; the
    # member comes up merely disabled, and the next run PATCHes it offline.
    member = dict(pool="web", address="10.0.0.9", port=80, state="forced_offline")
    f5.reset_requests()
    assert bigip_pool_member(f5, **member)["changed"] is True
    post = [e for e in f5.requests()["entries"] if e["method"] == "POST" and e["path"].endswith("/members")]
    assert post[0]["body"]["session"] == "user-disabled" and "state" not in post[0]["body"]
    assert admin_state(f5, "web", "10.0.0.9:80") == ("user-disabled", "user-up")
    assert bigip_pool_member(f5, **member)["changed"] is True
    assert admin_state(f5, "web", "10.0.0.9:80") == ("user-disabled", "user-down")
    assert bigip_pool_member(f5, **member)["changed"] is False


def test_absent_with_a_shared_node_fails_after_deleting_the_member(f5):
    # Reference §8: without preserve_node the module deletes the member, then
    # the node, which another pool still uses -- the device refuses with 400.
    result = bigip_pool_member(f5, pool="web", address="10.0.0.1", port=80, state="absent")
    assert result.get("failed") is True
    # The module fails with the raw response bytes (quotes escaped), as on a device.
    assert "01070110:3: Node address" in result["msg"] and "/Common/plain" in result["msg"]
    assert admin_state(f5, "web", "10.0.0.1:80") is None
    assert admin_state(f5, "plain", "10.0.0.1:8080") == ("user-enabled", "user-up")


def test_the_module_returns_before_connections_drain(f5):
    # bigip_pool_member has no drain wait: it reports success while the
    # disabled member still carries all its connections (drain rate "hold").
    result = bigip_pool_member(f5, pool="web", address="10.0.0.1", port=80, state="disabled")
    assert result["changed"] is True
    drained = f5.member(pool="web", member="10.0.0.1:80")
    assert (drained["draining"], drained["connections"]) == (True, 10)
