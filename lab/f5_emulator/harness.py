"""``F5Emulator``: start the emulator for a test, drive it, stop it.

    with F5Emulator(seed={...}, drain_rate=5) as f5:
        f5.url, f5.port, f5.ca_cert, f5.provider      # where and how to connect
        f5.set_member(pool="web", member="10.0.0.1:80", connections=12)
        f5.requests()["counts"]                       # HTTP requests seen

In-process (the default) it serves from a thread and exposes ``f5.state``,
whose clock a unit test may inject. ``subprocess=True`` runs
``python -m lab.f5_emulator`` instead, as users and benchmarks do. Either
way the helpers below talk to the ``/_emulator`` control channel over HTTP,
so a test reads the same against both.
"""
import json
import os
import shutil
import ssl
import subprocess as _subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from .server import create_server
from .state import State

REPO_ROOT = Path(__file__).resolve().parents[2]


class EmulatorError(RuntimeError):
    pass


class F5Emulator:
    def __init__(self, seed=None, drain_rate=1.0, https=True, subprocess=False, clock=None,
                 host="127.0.0.1", port=0, token_timeout=None, max_tokens=None,
                 user="admin", password="admin", verbose=False, start_timeout=30, state=None):
        if subprocess and (clock is not None or state is not None):
            raise ValueError("an injected clock or state only works in-process")
        self.seed_doc = seed
        self.drain_rate = drain_rate
        self.https = https
        self.subprocess = subprocess
        self.clock = clock
        self.host = host
        self.requested_port = port
        self.token_timeout = token_timeout
        self.max_tokens = max_tokens
        self.user = user
        self.password = password
        self.verbose = verbose
        self.start_timeout = start_timeout
        self.info = None
        self.state = None
        self._given_state = state     # a pre-built State (one device of an F5Pair)
        self._server = None
        self._thread = None
        self._proc = None
        self._tmp = None

    # --- lifecycle -----------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._tmp = tempfile.mkdtemp(prefix="f5-emulator-")
        try:
            if self.subprocess:
                self._start_process()
            else:
                self._start_thread()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_thread(self):
        self.state = self._given_state or State(clock=self.clock, drain_rate=self.drain_rate)
        self.state.users[self.user] = self.password
        if self.token_timeout:
            self.state.tokens.default_timeout = self.token_timeout
        if self.max_tokens:
            self.state.tokens.max_per_user = self.max_tokens
        if self.seed_doc:
            self.state.seed(self.seed_doc)
        self._server, self.info = create_server(self.state, self.host, self.requested_port, self.https,
                                                self._tmp, self.verbose)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="f5-emulator", daemon=True)
        self._thread.start()

    def _start_process(self):
        cmd = [sys.executable, "-m", "lab.f5_emulator", "--host", self.host, "--port", str(self.requested_port),
               "--drain-rate", str(self.drain_rate)]
        seed = dict(self.seed_doc or {})
        seed.setdefault("users", {})[self.user] = self.password
        seed_file = os.path.join(self._tmp, "seed.json")
        with open(seed_file, "w") as fh:
            json.dump(seed, fh)
        cmd += ["--state", seed_file]
        if not self.https:
            cmd.append("--http")
        if self.token_timeout:
            cmd += ["--token-timeout", str(self.token_timeout)]
        if self.max_tokens:
            cmd += ["--max-tokens", str(self.max_tokens)]
        if self.verbose:
            cmd.append("--verbose")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                        os.environ.get("PYTHONPATH")])))
        self._proc = _subprocess.Popen(cmd, cwd=str(REPO_ROOT), env=env, stdout=_subprocess.PIPE, text=True)
        line = []
        reader = threading.Thread(target=lambda: line.append(self._proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        if not line or not line[0].strip():
            raise EmulatorError("the emulator did not report ready within %ss (exit code %s)"
                                % (self.start_timeout, self._proc.poll()))
        self.info = json.loads(line[0])

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except _subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # --- where to connect ----------------------------------------------------

    @property
    def url(self):
        return self.info["url"]

    @property
    def port(self):
        return self.info["port"]

    @property
    def ca_cert(self):
        return self.info["ca_cert"]

    @property
    def pid(self):
        return self.info["pid"]

    @property
    def device_name(self):
        return self.state.device.name if self.state is not None else None

    @property
    def provider(self):
        """A ``provider`` dict for F5 modules (certificate checks off, like most users)."""
        return {"server": self.host, "server_port": self.port, "user": self.user,
                "password": self.password, "validate_certs": False}

    def ssl_context(self):
        if not self.https:
            return None
        return ssl.create_default_context(cafile=self.ca_cert)

    # --- control channel -----------------------------------------------------

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/_emulator/" + path.lstrip("/"), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise EmulatorError("control %s %s: %s %s" % (method, path, exc.code, exc.read().decode()))

    def seed(self, doc, reset=False):
        return self.control("POST", "seed", dict(doc, reset=reset))

    def reset(self):
        return self.control("POST", "reset", {})

    def dump(self):
        return self.control("GET", "state")

    def members(self, **selector):
        query = "&".join("%s=%s" % (k, urllib.request.quote(str(v), safe="")) for k, v in selector.items()
                         if v is not None)
        return self.control("GET", "members" + ("?" + query if query else ""))["members"]

    def member(self, **selector):
        found = self.members(**selector)
        if len(found) != 1:
            raise EmulatorError("%d members match %s" % (len(found), selector))
        return found[0]

    def set_member(self, pool=None, member=None, address=None, port=None, **runtime):
        """Set connections, sessions, health ('up'|'down'|'checking') or drain_rate."""
        selector = {"pool": pool, "member": member, "address": address, "port": port}
        return self.control("POST", "members", dict({k: v for k, v in selector.items() if v is not None},
                                                    **runtime))["members"]

    def send_traffic(self, pool, connections, requests_per_connection=1, request_bytes=0, response_bytes=0):
        """New client connections through the pool's load balancing (see State.send_traffic)."""
        return self.control("POST", "traffic", {"pool": pool, "connections": connections,
                                                "requests_per_connection": requests_per_connection,
                                                "request_bytes": request_bytes, "response_bytes": response_bytes})

    def set_pool_monitor(self, pool, monitor):
        return self.control("POST", "pools", {"pool": pool, "monitor": monitor})

    def requests(self, entries=True):
        return self.control("GET", "requests" + ("" if entries else "?entries=0"))

    def reset_requests(self):
        return self.control("DELETE", "requests")

    def tokens(self):
        return self.control("GET", "tokens")

    def expire_tokens(self, token=None, user=None):
        return self.control("POST", "tokens/expire", {"token": token, "user": user})["expired"]

    def configure(self, **config):
        """drain_rate (number or 'hold'), token_timeout, max_tokens, version, users."""
        return self.control("POST", "config", config)

    def fail_next(self, path, count=1, kind="mcpd", method=None, **extra):
        """Make the next ``count`` requests matching ``path`` (fnmatch) fail.

        kind: 'mcpd' (500 "The connection to mcpd has been lost"), 'reset'
        (TCP reset, no answer), 'restarting' (503 "Configuration Utility
        restarting..."), 'status' (status=, body=), 'delay' (seconds=).
        """
        return self.control("POST", "faults", dict(extra, path=path, count=count, kind=kind, method=method))

    def clear_faults(self):
        return self.control("DELETE", "faults")

    def advance(self, seconds):
        """Move the emulator's clock forward (drains progress, tokens age)."""
        return self.control("POST", "clock", {"advance": seconds})

    def ha(self):
        """This device, its group, failover states and sync status."""
        return self.control("GET", "ha")

    def failover(self, active, move_connections=True, at_next_stats=False):
        """Make the named device of the group active (connections move with it),
        now or right before this device answers its next member stats request."""
        return self.control("POST", "failover", {"active": active, "move_connections": move_connections,
                                                 "at_next_stats": at_next_stats})


class F5Pair:
    """Two emulated devices in one sync-failover device group (see ha.py),
    in-process, each with its own management address on the same port, as a
    real pair has: ``127.0.0.1`` (active) and ``127.0.0.2`` (standby).

        with F5Pair(seed=SEED, auto_sync=False) as pair:
            pair.active, pair.standby          # F5Emulator objects
            pair.port, pair.provider           # connect to the active one
            pair.active.failover(pair.standby.device_name)
    """

    NAMES = ("bigip1.example.com", "bigip2.example.com")
    ADDRESSES = ("127.0.0.1", "127.0.0.2")

    def __init__(self, seed=None, drain_rate=1.0, auto_sync=False, group="/Common/failover-dg", **options):
        self.seed_doc = seed
        self.drain_rate = drain_rate
        self.auto_sync = auto_sync
        self.group_path = group
        self.options = options
        self.devices = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        import threading
        from .ha import Device, DeviceGroup, join
        lock = threading.RLock()
        states = []
        for index, (name, address) in enumerate(zip(self.NAMES, self.ADDRESSES)):
            device = Device(name, address, "active" if index == 0 else "standby")
            states.append(State(drain_rate=self.drain_rate, lock=lock, device=device))
        join(states, DeviceGroup(self.group_path, "sync-failover", self.auto_sync))
        try:
            port = 0
            for state, address in zip(states, self.ADDRESSES):
                if self.seed_doc:
                    state.seed(self.seed_doc)
                emulator = F5Emulator(state=state, host=address, port=port, **self.options)
                emulator.start()
                self.devices.append(emulator)
                port = emulator.port
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for emulator in self.devices:
            emulator.stop()
        self.devices = []

    @property
    def port(self):
        return self.devices[0].port

    def device(self, name):
        return [d for d in self.devices if d.state.device.name == name][0]

    @property
    def active(self):
        return [d for d in self.devices if d.state.device.failover_state == "active"][0]

    @property
    def standby(self):
        return [d for d in self.devices if d.state.device.failover_state == "standby"][0]
