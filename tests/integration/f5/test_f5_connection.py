# -*- coding: utf-8 -*-
"""Connection options, authentication, TLS and device faults, each with a clear
one-line error and nothing changed; the login token always deleted."""
import json
import socket
import textwrap

import pytest

import helpers
from conftest import DISABLED, ENABLED, conn, info, run, stored, writes

pytestmark = pytest.mark.usefixtures("clean_env")


def logins(f5):
    return f5.requests()["counts"].get("POST /mgmt/shared/authn/login", 0)


def test_provider_dict(f5):
    args = dict(provider=dict(server="127.0.0.1", server_port=f5.port, user="admin", password="admin",
                              validate_certs=False), pool="web", name="10.0.0.1:80", state="drained")
    result = helpers.run_module("f5_pool_member", args)
    assert not result.failed and result["changed"] is True, result
    # Top-level options win over provider.
    args["provider"]["server_port"] = 1
    args["server_port"] = f5.port
    assert not helpers.run_module("f5_pool_member", args).failed


def test_environment_fallbacks(f5):
    env = dict(F5_SERVER="127.0.0.1", F5_SERVER_PORT=str(f5.port), F5_USER="admin", F5_PASSWORD="admin",
               F5_VALIDATE_CERTS="false", F5_PARTITION="DMZ")
    result = helpers.run_module("f5_pool_member", dict(pool="dmzweb", address="10.0.0.3", port=80,
                                                       state="drained"), env=env)
    assert not result.failed, result
    assert [m["container"] for m in result["members"]] == ["/DMZ/dmzweb"]
    listed = helpers.run_module("f5_pool_member_info", dict(pool="dmzweb"), env=env)
    assert not listed.failed and len(listed["members"]) == 2


def test_missing_server_says_which_variable(f5):
    result = helpers.run_module("f5_pool_member", dict(pool="web", name="10.0.0.1:80"))
    assert result.failed
    assert result["msg"] == ("server: not set; pass server (or provider.server), or set the environment variable "
                             "F5_SERVER")


def test_task_level_environment_in_a_playbook(f5, tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: localhost
          connection: local
          gather_facts: false
          tasks:
            - name: Drain with the connection from the task's environment
              gentle.lb.f5_pool_member:
                pool: web
                name: 10.0.0.2:80
                state: drained
              environment:
                F5_SERVER: 127.0.0.1
                F5_SERVER_PORT: "{port}"
                F5_USER: admin
                F5_PASSWORD: admin
                F5_VALIDATE_CERTS: "false"
              register: drained
            - name: Check it
              ansible.builtin.assert:
                that:
                  - drained is changed
                  - drained.members[0].state == 'drained'
        """.format(port=f5.port)))
    proc = helpers.run_playbook(str(playbook))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stored(f5, "web", "10.0.0.2:80") == DISABLED


def test_bad_credentials(f5):
    f5.reset_requests()
    result = run(f5, password="wrong", pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed
    assert result["msg"].endswith(": user admin was refused at login (Authentication failed.); check user and "
                                  "password (or F5_USER / F5_PASSWORD)")
    assert writes(f5) == [] and stored(f5, "web", "10.0.0.1:80") == ENABLED


def test_expired_token_is_renewed_during_a_long_wait(f5):
    # Tokens live 1 s; the drain takes 2.5 s: the token expires mid-wait, one new login follows.
    f5.configure(token_timeout=1)
    f5.set_member(pool="/Common/web", member="10.0.0.1:80", connections=5, drain_rate=2)
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert not result.failed, result
    assert result["waited"] >= 2.4
    assert logins(f5) >= 2
    expired = [e for e in f5.requests()["entries"] if e["status"] == 401]
    assert expired and all(e["path"].endswith("/stats") for e in expired)


def test_token_refused_again_after_one_relogin_fails(f5):
    f5.configure(token_timeout=0)          # every token is expired as soon as it is issued
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed and "refused again after logging in once more" in result["msg"]
    assert logins(f5) == 2
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED


def token_deletes(f5):
    counts = f5.requests()["counts"]
    return sum(n for key, n in counts.items() if key.startswith("DELETE /mgmt/shared/authz/tokens/"))


def test_without_the_cache_the_token_is_deleted_on_success_and_on_failure(f5):
    f5.reset_requests()
    assert not run(f5, pool="web", name="10.0.0.1:80", state="drained", token_cache=False).failed
    assert run(f5, pool="nope", name="10.0.0.1:80", state="drained", token_cache=False).failed
    assert token_deletes(f5) == logins(f5) == 2
    assert f5.tokens()["active"] == 0


def test_the_cached_token_serves_the_next_tasks(f5, token_dir):
    f5.reset_requests()
    assert not run(f5, pool="web", name="10.0.0.1:80", state="drained").failed
    assert run(f5, pool="nope", name="10.0.0.1:80", state="drained").failed
    assert not helpers.run_module("f5_pool_member_info", conn(f5, pool="web")).failed
    # One login for the three tasks, no token deleted; one token alive, the one the cache holds.
    assert logins(f5) == 1 and token_deletes(f5) == 0
    assert f5.tokens()["active"] == 1
    files = list(token_dir.iterdir())
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert "admin" not in json.loads(files[0].read_text()).get("verifier", "")
    # A task with a wrong password never gets the cached token: it logs in, and is refused.
    refused = run(f5, password="wrong", pool="web", name="10.0.0.1:80", state="present")
    assert refused.failed and refused["error_type"] == "AuthRefusedError"
    assert stored(f5, "web", "10.0.0.1:80") == DISABLED
    # A token the device no longer accepts is replaced by one new login.
    f5.expire_tokens()
    f5.reset_requests()
    assert not run(f5, pool="web", name="10.0.0.1:80", state="present").failed
    assert logins(f5) == 1 and stored(f5, "web", "10.0.0.1:80") == ENABLED


def test_the_token_cache_is_off_through_the_provider(f5, token_dir):
    f5.reset_requests()
    provider = dict(server="127.0.0.1", server_port=f5.port, user="admin", password="admin", validate_certs=False,
                    token_cache=False)
    result = helpers.run_module("f5_pool_member", dict(provider=provider, pool="web", name="10.0.0.1:80",
                                                       state="drained"))
    assert not result.failed
    assert token_deletes(f5) == logins(f5) == 1 and not token_dir.exists()


def test_tls_verification_failure_then_validate_certs_false_then_ca_bundle(f5, tmp_path):
    failed = run(f5, validate_certs=True, pool="web", name="10.0.0.1:80", state="drained")
    assert failed.failed
    assert "TLS certificate verification failed; set validate_certs: false" in failed["msg"]
    assert "REQUESTS_CA_BUNDLE" in failed["msg"] and "self-signed certificate" in failed["msg"]
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED
    # Verified against the emulator's own certificate as the CA bundle.
    verified = run(f5, validate_certs=True, pool="web", name="10.0.0.1:80", state="drained",
                   env=dict(REQUESTS_CA_BUNDLE=f5.ca_cert))
    assert not verified.failed and verified["changed"] is True, verified
    # The requests pitfall (#3829): validate_certs false must win over a CA bundle in the
    # environment that does not hold the device's CA.
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_text(open("/etc/ssl/certs/ca-certificates.crt").read())
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        unverified = run(f5, validate_certs=False, pool="web", name="10.0.0.1:80", state="present",
                         env={var: str(other_ca)})
        assert not unverified.failed, unverified
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED


def test_unreachable(f5):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(f5, server_port=port, pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed
    assert result["msg"] == ("F5 127.0.0.1:%d: cannot connect (Connection refused); check server and server_port, "
                             "and that this host can reach the management address" % port)
    assert result.elapsed < 5


def test_409_quotes_the_device(f5):
    message = ("01020066:3: The requested Pool Member (/Common/web /Common/10.0.0.1 80) already exists in "
               "partition Common.")
    f5.fail_next("/mgmt/tm/ltm/pool/~Common~web/members/*", method="PATCH", kind="status", status=409,
                 body={"code": 409, "message": message, "errorStack": []})
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed
    assert result["msg"].startswith("member 10.0.0.1:80 in pool /Common/web: F5 127.0.0.1:%d refused PATCH with "
                                    "409 conflict (%s)" % (f5.port, message))
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED


def test_400_body_is_shown_verbatim(f5):
    # Node web9 is 10.0.0.9: a member on it with another address is refused by the device.
    result = run(f5, pool="web", name="web9", address="10.0.0.10", port=80, state="present")
    assert result.failed
    assert result["msg"].endswith(
        'refused POST /mgmt/tm/ltm/pool/~Common~web/members with 400: {"code":400,"message":"0107003a:3: Pool '
        'member node (/Common/web9) and existing node (/Common/web9) address mismatch.","errorStack":[],'
        '"apiError":3}')
    assert stored(f5, "web", "web9:80") is None


def test_reads_are_retried_on_5xx_and_resets(f5):
    f5.fail_next("/mgmt/tm/ltm/pool/~Common~web/members/stats", method="GET", count=2, kind="mcpd")
    f5.fail_next("/mgmt/tm/ltm/pool/~Common~web/members", method="GET", count=1, kind="reset")
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert not result.failed, result
    counts = f5.requests()["counts"]
    assert counts["GET /mgmt/tm/ltm/pool/~Common~web/members"] == 2
    assert counts["GET /mgmt/tm/ltm/pool/~Common~web/members/stats"] >= 3
    assert stored(f5, "web", "10.0.0.1:80") == DISABLED


def test_read_retries_give_up_with_the_device_message(f5):
    f5.fail_next("/mgmt/tm/ltm/pool/~Common~web/members", method="GET", count=10, kind="restarting")
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed and "answered 503" in result["msg"] and "Configuration Utility restarting" in result["msg"]


def test_writes_are_not_retried(f5):
    f5.fail_next("/mgmt/tm/ltm/pool/~Common~web/members/*", method="PATCH", count=1, kind="mcpd")
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed and "The connection to mcpd has been lost, try again." in result["msg"]
    assert result["changed"] is False
    assert [method for method, dummy in writes(f5)] == ["PATCH"]
    assert stored(f5, "web", "10.0.0.1:80") == ENABLED


def _fake_missing(tmp_path, module):
    """A directory whose ``module`` cannot be imported, put before the real one."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / (module + ".py")).write_text('raise ImportError("No module named %s (test)")\n' % module)
    return dict(PYTHONPATH="%s:%s" % (fake, helpers.ensure_collection_link()))


def test_missing_requests(f5, tmp_path):
    result = helpers.run_module("f5_pool_member_info", conn(f5), env=_fake_missing(tmp_path, "requests"))
    assert result.failed and result["error_type"] == "MissingLibraryError"
    assert result["msg"].startswith("library requests: not installed where this module runs (")
    assert "pip install requests" in result["msg"]


def test_missing_bigsuds_says_how_to_install_it(f5, tmp_path):
    result = helpers.run_module("f5_pool_member_info", conn(f5, transport="soap"),
                                env=_fake_missing(tmp_path, "bigsuds"))
    assert result.failed and result["error_type"] == "MissingLibraryError"
    assert result["msg"].startswith("library bigsuds: not installed where this module runs (")
    assert "pip install --no-deps bigsuds suds-community six" in result["msg"]


def test_check_mode_reads_only(f5):
    f5.reset_requests()
    for state in ("drained", "absent"):
        result = run(f5, check=True, pool="web", name="10.0.0.1:80", state=state)
        assert result["changed"] is True
    assert run(f5, check=True, pool="web", address="10.0.0.8", port=80, state="present")["changed"] is True
    methods = set(e["method"] for e in f5.requests()["entries"] if e["path"].startswith("/mgmt/tm/"))
    assert methods == {"GET"}
    assert ("/Common/web", "10.0.0.8:80") not in info(f5, pool="web")


def test_a_device_that_trickles_its_answer_is_cut_at_timeout(f5):
    # The answer comes a byte every 50 ms: each read is quick, the whole would take minutes.
    assert not run(f5, pool="web", name="10.0.0.2:80", state="drained").failed   # logged in: the token is cached
    stats = "/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.1:80/stats"
    f5.fail_next(stats, method="GET", count=1, kind="trickle", seconds=0.05)
    f5.reset_requests()
    result = run(f5, timeout=1, pool="web", name="10.0.0.1:80", state="drained")
    assert result.failed and result["error_type"] == "UnreachableError"
    assert "no complete answer to GET %s within timeout=1s" % stats in result["msg"], result["msg"]
    # cut at the deadline (not retried: a device that slow is not better a moment later)
    assert result.elapsed < 4, result.elapsed
    assert writes(f5) == [] and stored(f5, "web", "10.0.0.1:80") == ENABLED


def test_a_drain_costs_four_requests_once_the_token_is_cached(f5):
    assert not run(f5, pool="web", name="10.0.0.2:80", state="drained").failed     # logs in, learns the device
    f5.reset_requests()
    result = run(f5, pool="web", name="10.0.0.1:80", state="drained")
    assert not result.failed and result["changed"] is True
    assert [(e["method"], e["path"]) for e in f5.requests()["entries"]] == [
        ("GET", "/mgmt/tm/ltm/pool/~Common~web/members"),          # the plan: every member's configuration...
        ("GET", "/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.1:80/stats"),   # ...the target's stats
        ("PATCH", "/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.1:80"),
        ("GET", "/mgmt/tm/ltm/pool/~Common~web/members/stats"),    # the floor check, and the wait's first look
    ]
