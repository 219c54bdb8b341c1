"""The F5 emulator against the reference (shared/reference/f5.md): shapes,
error bodies, tokens, paging, names, monitor-derived reads, draining stats,
transactions, faults, the control channel, and SOAP through real bigsuds.

Most tests run the emulator in-process with a manual clock, so drains and
token expiry are exercised without sleeping; a few start it as users do.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.f5_emulator import F5Emulator, ManualClock, State  # noqa: E402
from lab.f5_emulator.names import split_member_name, url_segment_to_fullpath  # noqa: E402

requests = pytest.importorskip("requests")

ADMIN_UUID = "21232f29-7a57-35a7-8389-4a0e4a801fc3"
SEED = {
    "partitions": ["DMZ", {"name": "RD6", "default_route_domain": 6}],
    "folders": ["/Common/app"],
    "pools": [
        {"name": "web", "monitor": "/Common/http", "members": [
            {"name": "10.0.0.1:80", "connections": 10, "sessions": 6},
            {"name": "10.0.0.2:80", "connections": 4},
        ]},
        {"name": "plain", "members": [
            {"name": "10.0.0.1:8080"},
            {"name": "2001:db8::10.443", "address": "2001:db8::10"},
            {"name": "10.0.0.3%2:80", "address": "10.0.0.3%2", "connections": 3},
        ]},
        {"name": "api", "partition": "DMZ", "members": [{"name": "10.1.0.1:443"}]},
        {"name": "edge", "partition": "RD6", "members": [{"name": "10.6.0.1:80"}]},
        {"name": "web", "partition": "Common", "subPath": "app", "members": []},
    ],
}
for _i in range(5):
    SEED["pools"].append({"name": "bulk%d" % _i})

# A client's timeout in these tests only detects a hung emulator; it measures
# nothing.  It is long because the suite runs beside the UML guests and the
# other suites: on a loaded machine (make test with a core kept busy) a first
# request once waited more than 10 s for the emulator's worker thread.
HUNG = 60


class Api:
    """A small REST client: basic auth by default, verified TLS against the emulator's CA."""

    def __init__(self, emu, auth=("admin", "admin")):
        self.emu = emu
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.auth = auth

    def call(self, method, path, **kw):
        kw.setdefault("verify", self.emu.ca_cert)
        # Generous: the suites run side by side on 2 cores, and a TLS handshake
        # in a starved worker thread has taken seconds there.
        return self.session.request(method, self.emu.url + path, timeout=HUNG, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def json(self, method, path, status=200, **kw):
        resp = self.call(method, path, **kw)
        assert resp.status_code == status, resp.text
        return resp.json() if resp.content else None


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def emu(clock):
    with F5Emulator(seed=SEED, clock=clock, drain_rate=2) as f5:
        yield f5


@pytest.fixture
def api(emu):
    return Api(emu)


MEMBERS = "/mgmt/tm/ltm/pool/~Common~web/members"
M1 = MEMBERS + "/~Common~10.0.0.1:80"


# --- names ------------------------------------------------------------------

@pytest.mark.parametrize("segment, fullpath", [
    ("~Common~web", "/Common/web"),
    ("web", "/Common/web"),
    ("~Common~app~web", "/Common/app/web"),
    ("~Common~10.0.0.3%252:80", "/Common/10.0.0.3%2:80"),
    ("~Common~2001:db8::10.443", "/Common/2001:db8::10.443"),
])
def test_url_segments_decode_once(segment, fullpath):
    assert url_segment_to_fullpath(segment) == fullpath


@pytest.mark.parametrize("name, node, port", [
    ("10.0.0.1:80", "10.0.0.1", 80),
    ("2001:db8::10.443", "2001:db8::10", 443),
    ("10.0.0.3%2:80", "10.0.0.3%2", 80),
    ("2001:db8::10%2.443", "2001:db8::10%2", 443),
    ("web1:8080", "web1", 8080),
])
def test_member_names_split_like_a_device(name, node, port):
    assert split_member_name(name) == (node, port)


# --- start-up as users start it ------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["-m", "lab.f5_emulator"],
    [str(ROOT / "lab" / "f5_emulator" / "server.py")],
    ["-m", "lab.f5_emulator", "--http"],
])
def test_command_line_prints_a_ready_line_and_serves(argv, tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"pools": [{"name": "web", "members": [{"name": "10.0.0.1:80"}]}]}))
    proc = subprocess.Popen([sys.executable] + argv + ["--port", "0", "--state", str(seed), "--drain-rate", "hold"],
                            cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        assert set(info) >= {"url", "port", "ca_cert", "pid"}
        assert info["pid"] == proc.pid
        https = "--http" not in argv
        assert info["url"] == "%s://127.0.0.1:%d" % ("https" if https else "http", info["port"])
        assert (info["ca_cert"] is not None) == https
        resp = requests.get(info["url"] + "/mgmt/tm/ltm/pool/~Common~web/members", auth=("admin", "admin"),
                            verify=info["ca_cert"] if https else True, timeout=HUNG)
        assert resp.json()["items"][0]["name"] == "10.0.0.1:80"
        assert requests.get(info["control"] + "/config", verify=info["ca_cert"] if https else True,
                            timeout=HUNG).json()["drain_rate"] == "hold"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stdout.close()


def test_subprocess_harness_offers_the_same_control_channel():
    with F5Emulator(seed=SEED, subprocess=True, drain_rate="hold") as f5:
        assert f5.pid != os.getpid()
        f5.set_member(pool="web", member="10.0.0.1:80", connections=7)
        assert f5.member(pool="/Common/web", member="10.0.0.1:80")["connections"] == 7
        assert Api(f5).get("/mgmt/tm/sys/version").status_code == 200


# --- authentication and tokens --------------------------------------------------

def login(api, user="admin", password="admin"):
    return api.call("POST", "/mgmt/shared/authn/login", auth=None,
                    json={"username": user, "password": password, "loginProviderName": "tmos"})


def test_login_returns_a_token_that_authenticates(emu, api, clock):
    body = login(api).json()
    token = body["token"]
    assert body["username"] == "admin" and body["loginProviderName"] == "tmos"
    assert token["kind"] == "shared:authz:tokens:authtokenitemstate"
    assert token["timeout"] == 1200 and token["userName"] == "admin"
    assert token["expirationMicros"] == int((clock.now + 1200) * 1e6)
    bare = Api(emu, auth=None)
    resp = bare.get("/mgmt/tm/sys/", headers={"X-F5-Auth-Token": token["token"]})
    assert resp.status_code == 200
    assert "?ver=15.1.10" in resp.json()["selfLink"]


def test_bad_password_is_refused_with_the_device_body(api):
    resp = login(api, password="nope")
    body = resp.json()
    assert resp.status_code == 401
    assert body["message"] == "Authentication failed." and body["kind"] == ":resterrorresponse"
    assert "nope" not in resp.text


def test_missing_credentials_get_the_restjavad_401(emu):
    resp = Api(emu, auth=None).get("/mgmt/tm/sys")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="Enterprise Manager"'
    body = resp.json()
    assert body["kind"] == ":resterrorresponse" and body["code"] == 401
    assert body["message"].startswith("Authorization failed: no user authentication header or token detected. "
                                      "Uri:http://localhost:8100/mgmt/tm/sys")


def test_basic_auth_with_a_wrong_password_is_challenged(emu):
    resp = Api(emu, auth=("admin", "wrong")).get("/mgmt/tm/sys")
    assert resp.status_code == 401 and "WWW-Authenticate" in resp.headers


def test_token_expiry_timeout_patch_and_delete(emu, api, clock):
    token = login(api).json()["token"]["token"]
    bare = Api(emu, auth=None)
    hdr = {"X-F5-Auth-Token": token}
    patched = bare.json("PATCH", "/mgmt/shared/authz/tokens/" + token, headers=hdr, json={"timeout": 3600})
    assert patched["timeout"] == 3600
    assert patched["expirationMicros"] == int((clock.now + 3600) * 1e6)
    assert bare.call("PATCH", "/mgmt/shared/authz/tokens/" + token, headers=hdr,
                     json={"timeout": 36001}).status_code == 400

    clock.advance(3599)
    assert bare.get("/mgmt/tm/sys", headers=hdr).status_code == 200
    clock.advance(2)
    resp = bare.get("/mgmt/tm/sys", headers=hdr)
    assert resp.status_code == 401
    assert resp.json()["message"] == "X-F5-Auth-Token has expired."
    assert '"message":"X-F5-Auth-Token has expired."' in resp.text   # f5_modules grep for this

    token2 = login(api).json()["token"]["token"]
    hdr2 = {"X-F5-Auth-Token": token2}
    assert bare.call("DELETE", "/mgmt/shared/authz/tokens/" + token2, headers=hdr2).status_code == 200
    resp = bare.get("/mgmt/tm/sys", headers=hdr2)
    assert resp.status_code == 401 and resp.json()["message"] == "X-F5-Auth-Token does not exist."


def test_control_channel_expires_tokens_and_sets_their_lifetime(emu, api):
    emu.configure(token_timeout=5)
    token = login(api).json()["token"]
    assert token["timeout"] == 5
    assert emu.expire_tokens() == 1
    resp = Api(emu, auth=None).get("/mgmt/tm/sys", headers={"X-F5-Auth-Token": token["token"]})
    assert resp.json()["message"] == "X-F5-Auth-Token has expired."


def test_per_user_token_cap(emu, api):
    emu.configure(max_tokens=2)
    assert login(api).status_code == 200
    assert login(api).status_code == 200
    resp = login(api)
    assert resp.status_code == 400
    assert resp.json()["message"] == "user %s has reached maximum active login tokens" % ADMIN_UUID
    emu.expire_tokens(user="admin")
    assert login(api).status_code == 200


# --- sys ---------------------------------------------------------------------------

def test_sys_and_version(api):
    assert api.get("/mgmt/tm/sys/").json()["selfLink"] == "https://localhost/mgmt/tm/sys?ver=15.1.10"
    body = api.get("/mgmt/tm/sys/version").json()
    assert body["kind"] == "tm:sys:version:versionstats"
    nested = body["entries"]["https://localhost/mgmt/tm/sys/version/0"]["nestedStats"]["entries"]
    assert nested["Version"]["description"] == "15.1.10"
    assert nested["Product"]["description"] == "BIG-IP"


def test_unknown_uri_is_not_registered(api):
    resp = api.get("/mgmt/tm/ltm/nothing")
    assert resp.status_code == 404
    assert resp.json()["message"] == "Public URI path not registered: /tm/ltm/nothing"
    assert resp.json()["kind"] == ":resterrorresponse"


# --- pools and queries -----------------------------------------------------------------

def test_pool_shape_and_404(api):
    pool = api.json("GET", "/mgmt/tm/ltm/pool/~Common~web")
    assert pool["kind"] == "tm:ltm:pool:poolstate"
    assert pool["fullPath"] == "/Common/web" and pool["monitor"] == "/Common/http"
    assert pool["selfLink"] == "https://localhost/mgmt/tm/ltm/pool/~Common~web?ver=15.1.10"
    assert pool["membersReference"]["link"].endswith("/~Common~web/members?ver=15.1.10")
    assert "monitor" not in api.json("GET", "/mgmt/tm/ltm/pool/~Common~plain")
    folder = api.json("GET", "/mgmt/tm/ltm/pool/~Common~app~web")
    assert (folder["fullPath"], folder["subPath"]) == ("/Common/app/web", "app")

    for path, name in [("/mgmt/tm/ltm/pool/~Common~nope", "/Common/nope"),
                       ("/mgmt/tm/ltm/pool/~Nowhere~web", "/Nowhere/web")]:
        resp = api.get(path)
        assert resp.status_code == 404
        assert resp.json() == {"code": 404, "message": "01020036:3: The requested Pool (%s) was not found." % name,
                               "errorStack": [], "apiError": 3}


def test_pool_collection_select_filter_and_expand(api):
    body = api.json("GET", "/mgmt/tm/ltm/pool", params={"$select": "name,fullPath"})
    assert body["kind"] == "tm:ltm:pool:poolcollectionstate"
    assert all(set(i) == {"name", "fullPath"} for i in body["items"])
    dmz = api.json("GET", "/mgmt/tm/ltm/pool?$filter=partition+eq+DMZ")
    assert [i["fullPath"] for i in dmz["items"]] == ["/DMZ/api"]
    assert api.get("/mgmt/tm/ltm/pool?$filter=partition+eq+Nowhere").status_code == 404
    expanded = api.json("GET", "/mgmt/tm/ltm/pool/~Common~web?expandSubcollections=true")
    assert [m["name"] for m in expanded["membersReference"]["items"]] == ["10.0.0.1:80", "10.0.0.2:80"]


def test_pagination_with_top_and_skip(api):
    total = len(SEED["pools"])
    seen, url, pages = [], "/mgmt/tm/ltm/pool?$top=3", 0
    while url:
        body = api.json("GET", url)
        pages += 1
        assert body["totalItems"] == total
        assert body["currentItemCount"] == len(body.get("items", []))
        seen += [i["fullPath"] for i in body["items"]]
        url = body.get("nextLink", "").replace("https://localhost", "")
    assert pages == -(-total // 3) and len(seen) == total == len(set(seen))
    past = api.json("GET", "/mgmt/tm/ltm/pool?$top=3&$skip=%d" % total)
    assert "items" not in past and past["currentItemCount"] == 0


# --- members ---------------------------------------------------------------------------------

def test_member_shape(api):
    member = api.json("GET", M1)
    assert member["kind"] == "tm:ltm:pool:members:membersstate"
    assert member["selfLink"] == "https://localhost" + M1 + "?ver=15.1.10"
    assert (member["name"], member["partition"], member["fullPath"], member["address"]) == \
        ("10.0.0.1:80", "Common", "/Common/10.0.0.1:80", "10.0.0.1")
    # Monitored pool: reads are the monitor's view, not what was written.
    assert (member["session"], member["state"]) == ("monitor-enabled", "up")
    assert api.json("GET", M1, params={"$select": "name,session"}) == {"name": "10.0.0.1:80",
                                                                     "session": "monitor-enabled"}


def test_member_404_and_409_bodies(api):
    resp = api.get(MEMBERS + "/~Common~10.9.9.9:80")
    assert resp.status_code == 404
    assert resp.json() == {"code": 404, "errorStack": [], "apiError": 3, "message":
                           "01020036:3: The requested Pool Member (/Common/web /Common/10.9.9.9 80) was not found."}
    resp = api.call("POST", MEMBERS, json={"name": "10.0.0.1:80", "partition": "Common", "address": "10.0.0.1"})
    assert resp.status_code == 409
    assert resp.json() == {"code": 409, "errorStack": [], "message":
                           "01020066:3: The requested Pool Member (/Common/web /Common/10.0.0.1 80) already exists "
                           "in partition Common."}


def test_post_member_creates_or_reuses_the_node(api):
    created = api.json("POST", MEMBERS, json={"name": "10.0.0.7:80", "partition": "Common", "address": "10.0.0.7",
                                              "session": "user-enabled", "state": "user-up"})
    assert created["name"] == "10.0.0.7:80"
    assert api.json("GET", "/mgmt/tm/ltm/node/~Common~10.0.0.7")["address"] == "10.0.0.7"
    # An existing node of that name is reused, without an address too.
    api.json("POST", "/mgmt/tm/ltm/pool/~Common~plain/members", json={"name": "10.0.0.7:80"})
    # A named node: the member takes the node's name.
    api.json("POST", "/mgmt/tm/ltm/node", json={"name": "app9", "address": "10.0.0.9"})
    named = api.json("POST", MEMBERS, json={"name": "app9:80"})
    assert (named["address"], named["fullPath"]) == ("10.0.0.9", "/Common/app9:80")
    # ...but the same address under another node name is a device error.
    resp = api.call("POST", MEMBERS, json={"name": "10.0.0.9:81", "address": "10.0.0.9"})
    assert resp.status_code == 400
    assert resp.json()["message"] == "0107176c:3: Invalid Node, the IP address 10.0.0.9 already exists."
    resp = api.call("POST", MEMBERS, json={"name": "app9:82", "address": "10.0.0.10"})
    assert resp.status_code == 400 and "address mismatch" in resp.json()["message"]


@pytest.mark.parametrize("monitor, health, session, state, read_session, read_state", [
    (None, "up", "user-enabled", "user-up", "user-enabled", "unchecked"),
    (None, "up", "user-disabled", "user-up", "user-disabled", "unchecked"),
    (None, "up", "user-disabled", "user-down", "user-disabled", "user-down"),
    ("/Common/http", "up", "user-enabled", "user-up", "monitor-enabled", "up"),
    ("/Common/http", "down", "user-enabled", "user-up", "monitor-enabled", "down"),
    ("/Common/http", "down", "user-disabled", "user-up", "user-disabled", "down"),
    ("/Common/http", "up", "user-disabled", "user-down", "user-disabled", "user-down"),
])
def test_reads_are_monitor_derived(emu, api, monitor, health, session, state, read_session, read_state):
    emu.set_pool_monitor("/Common/web", monitor)
    emu.set_member(pool="/Common/web", member="10.0.0.1:80", health=health)
    written = api.json("PATCH", M1, json={"session": session, "state": state})
    assert (written["session"], written["state"]) == (read_session, read_state)
    read = api.json("GET", M1)
    assert (read["session"], read["state"]) == (read_session, read_state)


def test_only_user_values_are_writable(api):
    assert api.call("PATCH", M1, json={"state": "up"}).status_code == 400
    assert api.call("PATCH", M1, json={"session": "monitor-enabled"}).status_code == 400
    resp = api.call("PATCH", M1, json={"bogus": 1})
    assert resp.status_code == 400 and "not emulated" in resp.json()["message"]


def test_put_replaces_and_delete_removes(api):
    api.json("PATCH", M1, json={"ratio": 5, "session": "user-disabled"})
    replaced = api.json("PUT", M1, json={"description": "x"})
    assert (replaced["ratio"], replaced["session"], replaced["description"]) == (1, "monitor-enabled", "x")
    assert api.call("DELETE", M1).status_code == 200
    assert api.get(M1).status_code == 404
    assert api.get("/mgmt/tm/ltm/node/~Common~10.0.0.1").status_code == 200   # the node stays


def test_route_domain_and_ipv6_members(emu, api):
    rd = "/mgmt/tm/ltm/pool/~Common~plain/members/~Common~10.0.0.3%252:80"
    member = api.json("GET", rd)
    assert (member["name"], member["address"]) == ("10.0.0.3%2:80", "10.0.0.3%2")
    assert member["selfLink"] == "https://localhost" + rd + "?ver=15.1.10"
    assert api.json("GET", "/mgmt/tm/ltm/node/~Common~10.0.0.3%252")["address"] == "10.0.0.3%2"
    v6 = api.json("GET", "/mgmt/tm/ltm/pool/~Common~plain/members/~Common~2001:db8::10.443")
    assert (v6["name"], v6["address"]) == ("2001:db8::10.443", "2001:db8::10")
    # A partition's default route domain shows in the address it reads back.
    edge = api.json("GET", "/mgmt/tm/ltm/pool/~RD6~edge/members/~RD6~10.6.0.1:80")
    assert (edge["address"], edge["partition"]) == ("10.6.0.1%6", "RD6")
    resp = api.get("/mgmt/tm/ltm/pool/~Common~plain/members/~Common~10.0.0.3%253:80")
    assert resp.json()["message"] == \
        "01020036:3: The requested Pool Member (/Common/plain /Common/10.0.0.3%3 80) was not found."


def test_member_in_an_unknown_partition_is_refused(api):
    resp = api.call("POST", MEMBERS, json={"name": "10.0.0.8:80", "partition": "Nowhere"})
    assert resp.status_code == 404
    assert resp.json()["message"] == "01020036:3: The requested folder (/Nowhere) was not found."


# --- stats and draining ------------------------------------------------------------------------

STAT_KEYS = {"addr", "curSessions", "monitorRule", "monitorStatus", "nodeName", "poolName", "port",
             "serverside.curConns", "serverside.maxConns", "serverside.totConns", "sessionStatus",
             "status.availabilityState", "status.enabledState", "status.statusReason"}


def single_stats(api, path=M1):
    body = api.json("GET", path + "/stats")
    assert body["kind"] == "tm:ltm:pool:members:membersstats"
    (key, value), = body["entries"].items()
    assert key == "https://localhost" + path + "/stats"
    return value["nestedStats"]["entries"]


def test_stats_shapes(api):
    body = api.json("GET", MEMBERS + "/stats")
    assert body["kind"] == "tm:ltm:pool:members:memberscollectionstats"
    assert sorted(body["entries"]) == ["https://localhost%s/~Common~10.0.0.%d:80/stats" % (MEMBERS, i)
                                       for i in (1, 2)]
    nested = body["entries"]["https://localhost%s/stats" % M1]["nestedStats"]
    assert nested["kind"] == "tm:ltm:pool:members:membersstats"
    entries = nested["entries"]
    assert STAT_KEYS <= set(entries)
    assert entries["serverside.curConns"] == {"value": 10}
    assert entries["curSessions"] == {"value": 6}
    assert entries["addr"] == {"description": "10.0.0.1"}
    assert entries["port"] == {"value": 80}
    assert entries["nodeName"] == {"description": "/Common/10.0.0.1"}
    assert entries["poolName"] == {"description": "/Common/web"}
    assert entries["monitorStatus"] == {"description": "up"}
    assert entries["status.availabilityState"] == {"description": "available"}
    assert entries["sessionStatus"] == {"description": "enabled"}
    assert single_stats(api) == entries
    rd = api.json("GET", "/mgmt/tm/ltm/pool/~Common~plain/members/stats")["entries"]
    assert "https://localhost/mgmt/tm/ltm/pool/~Common~plain/members/~Common~10.0.0.3%252:80/stats" in rd
    assert "https://localhost/mgmt/tm/ltm/pool/~Common~plain/members/~Common~2001:db8::10.443/stats" in rd


@pytest.mark.parametrize("monitor, health, state, availability, monitor_status", [
    ("/Common/http", "up", "user-up", "available", "up"),
    ("/Common/http", "down", "user-up", "offline", "down"),
    (None, "up", "user-up", "unknown", "unchecked"),
    (None, "up", "user-down", "offline", "forced down"),
])
def test_availability(emu, api, monitor, health, state, availability, monitor_status):
    emu.set_pool_monitor("web", monitor)
    emu.set_member(pool="web", member="10.0.0.1:80", health=health)
    api.json("PATCH", M1, json={"state": state})
    entries = single_stats(api)
    assert entries["status.availabilityState"]["description"] == availability
    assert entries["monitorStatus"]["description"] == monitor_status


def totals(api, pool="web"):
    """{member name: (totConns, totRequests, bitsIn, bitsOut)} from the pool's stats."""
    out = {}
    for value in api.json("GET", "/mgmt/tm/ltm/pool/~Common~%s/members/stats" % pool)["entries"].values():
        e = value["nestedStats"]["entries"]
        name = "%s:%s" % (e["addr"]["description"], e["port"]["value"])
        out[name] = tuple(e[k]["value"] for k in ("serverside.totConns", "totRequests", "serverside.bitsIn",
                                                  "serverside.bitsOut"))
    return out


def test_traffic_is_spread_by_the_pools_load_balancing_and_counted(emu, api):
    before = totals(api)
    sent = emu.send_traffic("web", 10, requests_per_connection=3, request_bytes=100, response_bytes=1000)
    assert sent == {"members": {"/Common/10.0.0.1:80": 5, "/Common/10.0.0.2:80": 5}, "refused": 0}
    after = totals(api)
    for name in ("10.0.0.1:80", "10.0.0.2:80"):
        grown = tuple(a - b for a, b in zip(after[name], before[name]))
        # 5 connections, 15 requests; bits: the member's answers in, the requests out (server side)
        assert grown == (5, 15, 15 * 1000 * 8, 15 * 100 * 8)
    # The current connections (the seeded load) are not changed by short connections.
    assert single_stats(api)["serverside.curConns"]["value"] == 10


def test_traffic_follows_the_ratio_in_ratio_modes_only(emu, api):
    api.json("PATCH", MEMBERS + "/~Common~10.0.0.2:80", json={"ratio": 3})
    assert emu.send_traffic("web", 8)["members"] == {"/Common/10.0.0.1:80": 4, "/Common/10.0.0.2:80": 4}
    api.json("PATCH", "/mgmt/tm/ltm/pool/~Common~web", json={"loadBalancingMode": "ratio-member"})
    assert emu.send_traffic("web", 8)["members"] == {"/Common/10.0.0.1:80": 2, "/Common/10.0.0.2:80": 6}


def test_a_member_out_of_rotation_or_marked_down_gets_no_new_connections(emu, api):
    api.json("PATCH", M1, json={"session": "user-disabled", "state": "user-up"})
    assert emu.send_traffic("web", 4)["members"] == {"/Common/10.0.0.2:80": 4}
    api.json("PATCH", M1, json={"session": "user-enabled", "state": "user-up"})
    emu.set_member(pool="web", member="10.0.0.2:80", health="down")
    assert emu.send_traffic("web", 4)["members"] == {"/Common/10.0.0.1:80": 4}
    emu.set_member(pool="web", member="10.0.0.1:80", health="down")
    assert emu.send_traffic("web", 3) == {"members": {}, "refused": 3}


def test_connections_hold_while_enabled_and_drain_once_disabled(emu, api, clock):
    clock.advance(100)
    assert single_stats(api)["serverside.curConns"]["value"] == 10        # enabled: load stays
    api.json("PATCH", M1, json={"session": "user-disabled", "state": "user-up"})
    entries = single_stats(api)
    assert (entries["serverside.curConns"]["value"], entries["curSessions"]["value"]) == (10, 6)
    assert entries["status.enabledState"]["description"] == "disabled"
    assert entries["sessionStatus"]["description"] == "user-disabled"
    assert entries["status.statusReason"]["description"] == "Pool member is available, user disabled"
    clock.advance(1)                                                        # drain rate 2/s
    assert single_stats(api)["serverside.curConns"]["value"] == 8
    clock.advance(0.25)
    assert single_stats(api)["serverside.curConns"]["value"] == 8          # a connection counts until closed
    clock.advance(2.75)
    entries = single_stats(api)
    assert (entries["serverside.curConns"]["value"], entries["curSessions"]["value"]) == (2, 0)
    clock.advance(60)
    assert single_stats(api)["serverside.curConns"]["value"] == 0
    api.json("PATCH", M1, json={"session": "user-enabled"})
    assert single_stats(api)["serverside.curConns"]["value"] == 10         # back in rotation


def test_forced_offline_still_drains_active_connections(emu, api, clock):
    api.json("PATCH", M1, json={"session": "user-disabled", "state": "user-down"})
    entries = single_stats(api)
    assert entries["status.availabilityState"]["description"] == "offline"
    assert entries["status.statusReason"]["description"] == "Forced down"
    clock.advance(2)
    assert single_stats(api)["serverside.curConns"]["value"] == 6


def test_drain_rate_hold_per_member_and_mid_drain_change(emu, api, clock):
    emu.configure(drain_rate="hold")
    api.json("PATCH", M1, json={"session": "user-disabled"})
    clock.advance(1000)
    assert single_stats(api)["serverside.curConns"]["value"] == 10
    emu.configure(drain_rate=1)
    clock.advance(3)
    assert single_stats(api)["serverside.curConns"]["value"] == 7          # held time does not count
    emu.set_member(pool="web", member="10.0.0.1:80", drain_rate=0.5)
    clock.advance(4)
    assert single_stats(api)["serverside.curConns"]["value"] == 5
    emu.set_member(pool="web", member="10.0.0.1:80", connections=9)         # restarts the drain from 9
    assert emu.member(pool="web", member="10.0.0.1:80")["connections"] == 9


def test_control_clock_advance(emu, api):
    api.json("PATCH", M1, json={"session": "user-disabled"})
    emu.advance(5)
    assert emu.member(pool="web", member="10.0.0.1:80")["connections"] == 0


def test_a_disabled_node_disables_its_members(emu, api, clock):
    api.json("PATCH", "/mgmt/tm/ltm/node/~Common~10.0.0.1", json={"session": "user-disabled"})
    entries = single_stats(api)
    assert entries["status.enabledState"]["description"] == "disabled-by-parent"
    clock.advance(1)
    assert entries["serverside.curConns"]["value"] == 10
    assert single_stats(api)["serverside.curConns"]["value"] == 8
    node = api.json("GET", "/mgmt/tm/ltm/node/~Common~10.0.0.1/stats")
    (nested,), = [list(node["entries"].values())]
    assert nested["nestedStats"]["entries"]["serverside.curConns"]["value"] == 8    # 8 + 0 on :8080


# --- nodes -----------------------------------------------------------------------------------

def test_node_shape_and_referenced_delete(api):
    node = api.json("GET", "/mgmt/tm/ltm/node/~Common~10.0.0.2")
    assert node["kind"] == "tm:ltm:node:nodestate"
    assert (node["address"], node["session"], node["state"]) == ("10.0.0.2", "user-enabled", "unchecked")
    resp = api.call("DELETE", "/mgmt/tm/ltm/node/~Common~10.0.0.2")
    assert resp.status_code == 400
    assert resp.json() == {"code": 400, "errorStack": [], "apiError": 3, "message":
                           "01070110:3: Node address '/Common/10.0.0.2' is referenced by a member of pool "
                           "'/Common/web'."}
    api.json("DELETE", MEMBERS + "/~Common~10.0.0.2:80")
    assert api.call("DELETE", "/mgmt/tm/ltm/node/~Common~10.0.0.2").status_code == 200
    resp = api.get("/mgmt/tm/ltm/node/~Common~10.0.0.2")
    assert resp.status_code == 404
    assert resp.json()["message"] == "01020036:3: The requested Node (/Common/10.0.0.2) was not found."
    assert [n["name"] for n in api.json("GET", "/mgmt/tm/ltm/node?$filter=partition+eq+DMZ")["items"]] == \
        ["10.1.0.1"]


@pytest.mark.parametrize("kind", ["gre", "ipip"])
def test_tunnel_collections_are_empty(api, kind):
    body = api.json("GET", "/mgmt/tm/net/tunnels/" + kind)
    assert body["kind"] == "tm:net:tunnels:%s:%scollectionstate" % (kind, kind)
    assert "items" not in body


# --- transactions ---------------------------------------------------------------------------------

def test_transaction_queues_then_commits(api):
    txn = api.json("POST", "/mgmt/tm/transaction/", json={})
    assert txn["state"] == "STARTED" and txn["kind"] == "tm:transactionstate"
    hdr = {"X-F5-REST-Coordination-Id": str(txn["transId"])}
    queued = api.json("PATCH", M1, headers=hdr, json={"session": "user-disabled"})
    assert queued["kind"] == "tm:transaction:commandsstate" and queued["evalOrder"] == 1
    api.json("DELETE", MEMBERS + "/~Common~10.0.0.2:80", headers=hdr)
    assert api.json("GET", M1)["session"] == "monitor-enabled"             # nothing applied yet
    done = api.json("PATCH", "/mgmt/tm/transaction/%d" % txn["transId"], json={"state": "VALIDATING"})
    assert done["state"] == "COMPLETED"
    assert api.json("GET", M1)["session"] == "user-disabled"
    assert api.get(MEMBERS + "/~Common~10.0.0.2:80").status_code == 404


def test_a_failing_transaction_changes_nothing(api):
    txn = api.json("POST", "/mgmt/tm/transaction", json={})
    hdr = {"X-F5-REST-Coordination-Id": str(txn["transId"])}
    api.json("DELETE", M1, headers=hdr)
    api.json("DELETE", MEMBERS + "/~Common~10.9.9.9:80", headers=hdr)
    resp = api.call("PATCH", "/mgmt/tm/transaction/%d" % txn["transId"], json={"state": "VALIDATING"})
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("transaction failed:01020036:3: The requested Pool Member")
    assert api.get(M1).status_code == 200


# --- faults and the request log ----------------------------------------------------------------------

def test_mcpd_fault_then_recovery(emu, api):
    emu.fail_next("/mgmt/tm/ltm/pool/*/members/stats", count=2)
    for _ in range(2):
        resp = api.get(MEMBERS + "/stats")
        assert resp.status_code == 500
        assert resp.json() == {"code": 500, "message": "The connection to mcpd has been lost, try again.",
                               "errorStack": [], "apiError": 32768001}
    assert api.get(MEMBERS + "/stats").status_code == 200


def test_connection_reset_and_restarting_faults(emu, api):
    emu.fail_next(M1, kind="reset", method="GET")
    with pytest.raises(requests.ConnectionError):
        api.get(M1)
    assert api.get(M1).status_code == 200
    emu.fail_next("/mgmt/shared/authn/login", kind="restarting")
    resp = login(api)
    assert resp.status_code == 503 and "Configuration Utility restarting..." in resp.text
    emu.fail_next(M1, kind="status", status=503, body={"code": 503, "message": "busy"})
    assert api.get(M1).json() == {"code": 503, "message": "busy"}
    assert emu.control("GET", "faults") == {"faults": []}


def test_request_log_counts_method_and_path(emu, api):
    emu.reset_requests()
    api.get(M1)
    api.get(M1)
    api.call("PATCH", M1, json={"ratio": 2})
    login(api)
    log = emu.requests()
    assert log["counts"] == {"GET " + M1: 2, "PATCH " + M1: 1, "POST /mgmt/shared/authn/login": 1}
    assert log["total"] == 4 and log["by_method"] == {"GET": 2, "PATCH": 1, "POST": 1}
    assert log["entries"][-1]["body"]["password"] == "********"
    assert "entries" not in emu.requests(entries=False)


def test_control_channel_rejects_unknown_things(emu):
    with pytest.raises(Exception, match="404"):
        emu.set_member(pool="web", member="10.9.9.9:80", connections=1)
    with pytest.raises(Exception, match="400"):
        emu.configure(drain_rate="fast")
    assert "GET /_emulator/state" in emu.control("GET", "")["endpoints"]


def test_state_seeding_is_idempotent_and_resettable(emu):
    emu.seed({"pools": [{"name": "web", "members": [{"name": "10.0.0.1:80", "connections": 3}]}]})
    assert emu.member(pool="web", member="10.0.0.1:80")["connections"] == 3
    emu.reset()
    assert emu.dump()["pools"] == []


def test_state_is_usable_without_a_server():
    state = State(clock=ManualClock(), drain_rate="hold")
    state.seed({"pools": [{"name": "p", "members": [{"name": "10.0.0.1:80", "connections": 2}]}]})
    (member,) = state.dump()["pools"][0]["members"]
    assert (member["connections"], member["readState"]) == (2, "unchecked")


# --- SOAP through the real bigsuds --------------------------------------------------------------------

def test_soap_portal_needs_credentials(emu):
    resp = requests.get(emu.url + "/iControl/iControlPortal.cgi?WSDL=LocalLB.Pool", verify=emu.ca_cert, timeout=HUNG)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="BIG-IP"'
    wsdl = requests.get(emu.url + "/iControl/iControlPortal.cgi?WSDL=LocalLB.Pool", auth=("admin", "admin"),
                        verify=emu.ca_cert, timeout=HUNG)
    assert wsdl.status_code == 200 and 'targetNamespace="urn:iControl"' in wsdl.text
    index = requests.get(emu.url + "/iControl/iControlPortal.cgi", auth=("admin", "admin"),
                         verify=emu.ca_cert, timeout=HUNG)
    assert '/iControl/iControlPortal.cgi?WSDL=LocalLB.Pool"' in index.text


@pytest.fixture
def bigsuds():
    return pytest.importorskip("bigsuds", reason="bigsuds is installed in .venv by the Makefile (--no-deps)")


def test_soap_via_bigsuds(emu, api, bigsuds, clock):
    b = bigsuds.BIGIP(hostname="127.0.0.1", port=emu.port, username="admin", password="admin", verify=False)
    pool = b.LocalLB.Pool
    assert pool.get_list() == sorted(p["fullPath"] for p in emu.dump()["pools"])
    m1 = {"address": "/Common/10.0.0.1", "port": 80}
    assert pool.get_member_v2(["/Common/web"]) == [[m1, {"address": "/Common/10.0.0.2", "port": 80}]]

    new = {"address": "10.0.0.5", "port": 80}
    pool.add_member_v2(["web"], [[new]])
    assert api.json("GET", MEMBERS + "/~Common~10.0.0.5:80")["address"] == "10.0.0.5"   # REST sees it
    pool.remove_member_v2(["web"], [[new]])
    assert api.get(MEMBERS + "/~Common~10.0.0.5:80").status_code == 404

    assert pool.get_member_session_status(["web"], [[m1]]) == [["SESSION_STATUS_ENABLED"]]
    pool.set_member_session_enabled_state(["web"], [[m1]], [["STATE_DISABLED"]])
    assert pool.get_member_session_status(["web"], [[m1]]) == [["SESSION_STATUS_FORCED_DISABLED"]]
    assert api.json("GET", M1)["session"] == "user-disabled"
    assert pool.get_member_monitor_status(["web"], [[m1]]) == [["MONITOR_STATUS_UP"]]
    pool.set_member_monitor_state(["web"], [[m1]], [["STATE_DISABLED"]])
    assert pool.get_member_monitor_status(["web"], [[m1]]) == [["MONITOR_STATUS_FORCED_DOWN"]]
    assert pool.get_member_object_status(["web"], [[m1]]) == [[{
        "availability_status": "AVAILABILITY_STATUS_RED", "enabled_status": "ENABLED_STATUS_DISABLED",
        "status_description": "Forced down"}]]

    clock.advance(2)
    (stats,) = pool.get_member_statistics(["web"], [[m1]])
    (entry,) = stats["statistics"]
    values = {s["type"]: s["value"]["high"] << 32 | s["value"]["low"] for s in entry["statistics"]}
    assert entry["member"] == m1
    assert values["STATISTIC_SERVER_SIDE_CURRENT_CONNECTIONS"] == 6
    assert values["STATISTIC_CURRENT_SESSIONS"] == 2
    assert len(pool.get_all_member_statistics(["web"])[0]["statistics"]) == 2
    assert b.System.SystemInfo.get_version() == "BIG-IP_v15.1.10"

    with pytest.raises(bigsuds.ServerError, match="01020036:3: The requested Pool \\(/Common/nope\\)"):
        pool.get_member_v2(["nope"])
    with pytest.raises(bigsuds.ServerError, match="01020066:3"):
        pool.add_member_v2(["web"], [[m1]])
    soap = [e for e in emu.requests()["entries"] if e["path"] == "/iControl/iControlPortal.cgi"]
    assert soap[0]["status"] == 401 and soap[1]["status"] == 200    # challenge, then credentials


def test_soap_wrong_password_is_a_bigsuds_error(emu, bigsuds):
    b = bigsuds.BIGIP(hostname="127.0.0.1", port=emu.port, username="admin", password="bad", verify=False)
    with pytest.raises(bigsuds.OperationFailed):
        b.LocalLB.Pool.get_list()


def test_nothing_listens_after_stop(emu):
    port = emu.port
    emu.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
