#!/usr/bin/env python3
"""Start, stop and redeploy lab app instances (lab/app/app.py).

This is what the deploy tasks of the lab's playbooks run on a node, so it
behaves like a real service manager: `deploy` stops the running version
(SIGTERM, bounded wait, SIGKILL as a last resort, like systemd's
TimeoutStopSec), starts the new version detached from the calling task, and
returns only once the new version answers its health check -- or fails with
a message that says what it saw and where the log is.

    ctl.py deploy --port P --version V --pidfile F [--name N] [--logfile L]
                  [--bind 127.0.0.1] [--health-file PATH] [--break]
                  [--start-timeout 20] [--stop-timeout 30] [--keepalive-timeout S]
    ctl.py start  (the same options; fails if another version is running)
    ctl.py stop   --pidfile F [--stop-timeout 30]
    ctl.py status --pidfile F [--port P] [--bind 127.0.0.1]

A version named like "v2-broken", or --break, starts a build whose /health
answers 503: the deploy then fails (exit 1) and that build is left running,
as a real failed deploy would leave it, for the role's failure handling.
With --health-file the instance may legitimately be up but drained (the file
is moved away during the deploy): the deploy accepts that and says so.

Exit status: 0 done; 1 failed (message on stderr); 2 bad arguments;
`status` exits 3 when the instance is not running (LSB).

Stdlib only; runs on Python 3.11+.
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import time

APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.py")


class CtlError(Exception):
    """A failure to report on one line and exit 1."""


# -- the running process, found through its pidfile --


def read_pid(pidfile):
    try:
        with open(pidfile) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def proc_state(pid):
    """The process state letter from /proc ("R", "S", "Z", ...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name is in parentheses and may contain spaces.
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid):
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return proc_state(pid) not in ("Z", "X")


def is_our_app(pid, pidfile):
    """Guard against a stale pidfile whose pid was reused by something else."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().decode(errors="replace").split("\0")
    except OSError:
        return alive(pid)  # no /proc: trust the pidfile
    wanted = {pidfile, os.path.abspath(pidfile)}
    return any(a.endswith("app.py") for a in args) and any(a in wanted for a in args)


def running_pid(pidfile):
    """The pid of the app instance owning this pidfile, or None."""
    pid = read_pid(pidfile)
    if pid and alive(pid) and is_our_app(pid, pidfile):
        return pid
    return None


# -- HTTP probes --


def probe(bind, port, path, timeout=2.0):
    """GET path; returns (status, body text, headers) or raises OSError."""
    conn = http.client.HTTPConnection(bind, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace").strip(), resp
    except http.client.HTTPException as exc:
        raise OSError(f"bad HTTP answer: {exc}") from None
    finally:
        conn.close()


def health_verdict(status, resp, version):
    """'ok', 'drained' (up, but its health file is missing) or None (not yet/never)."""
    if resp.getheader("X-App-Version") != version:
        return None
    if status == 200:
        return "ok"
    if resp.getheader("X-App-Health") == "draining":
        return "drained"
    return None


# -- stop --


def stop_app(pidfile, stop_timeout):
    """Stop the instance; returns a short description of what was done."""
    pid = running_pid(pidfile)
    if pid is None:
        return "not running"
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, stop_timeout):
        return f"stopped pid {pid} in {time.monotonic() - started:.2f} s"
    # Like systemd after TimeoutStopSec: the deploy must go on.
    print(f"ctl: pid {pid} still running {stop_timeout:g} s after SIGTERM; sending SIGKILL", file=sys.stderr)
    os.kill(pid, signal.SIGKILL)
    if not wait_gone(pid, 5.0):
        raise CtlError(f"pid {pid} survived SIGKILL; the port is still taken")
    return f"killed pid {pid} after {stop_timeout:g} s"


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


# -- start --


def app_command(cfg):
    cmd = [sys.executable, APP, "--port", str(cfg.port), "--version", cfg.version,
           "--bind", cfg.bind, "--name", cfg.name, "--pidfile", os.path.abspath(cfg.pidfile)]
    if cfg.health_file:
        cmd += ["--health-file", os.path.abspath(cfg.health_file)]
    if cfg.brk:
        cmd.append("--broken")
    if cfg.keepalive_timeout is not None:
        cmd += ["--keepalive-timeout", str(cfg.keepalive_timeout)]
    if cfg.grace is not None:
        cmd += ["--grace", str(cfg.grace)]
    return cmd


def spawn(cfg):
    """Start the app detached: own session, no inherited pipes, output to the log.

    An inherited stdout would keep the Ansible task (or any caller reading
    our output) waiting until the app exits; a new session keeps it alive
    when the caller's session ends.
    """
    with open(cfg.logfile, "a") as log:
        log.write(f"--- ctl: starting {cfg.name} {cfg.version} on {cfg.bind}:{cfg.port} at {time.ctime()}\n")
        log.flush()
        return subprocess.Popen(app_command(cfg), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd="/")


def wait_healthy(proc, cfg):
    """Wait until the new version answers /health; returns 'ok' or 'drained'."""
    deadline = time.monotonic() + cfg.start_timeout
    last = "no answer yet"
    while True:
        code = proc.poll()
        if code is not None:
            raise CtlError(f"{describe(cfg)} exited with status {code} before it was healthy; "
                           f"log {cfg.logfile}:\n{log_tail(cfg.logfile)}")
        try:
            status, body, resp = probe(cfg.bind, cfg.port, "/health")
            verdict = health_verdict(status, resp, cfg.version)
            if verdict:
                return verdict
            last = f"{status} {body!r} from version {resp.getheader('X-App-Version')}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise CtlError(f"{describe(cfg)} did not become healthy within {cfg.start_timeout:g} s "
                           f"(last /health answer: {last}); left running as pid {proc.pid}, "
                           f"log {cfg.logfile}")
        time.sleep(0.05)


def log_tail(path, lines=5):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


def describe(cfg):
    return f"{cfg.name} {cfg.version} on http://{cfg.bind}:{cfg.port}/"


def start_and_wait(cfg, started):
    proc = spawn(cfg)
    verdict = wait_healthy(proc, cfg)
    took = time.monotonic() - started
    note = "" if verdict == "ok" else f" (up but drained: {cfg.health_file} is missing)"
    return f"{describe(cfg)} healthy, pid {proc.pid}, {took:.2f} s{note}"


# -- commands --


def cmd_deploy(cfg):
    started = time.monotonic()
    stopped = stop_app(cfg.pidfile, cfg.stop_timeout)
    msg = start_and_wait(cfg, started)
    print(f"deployed {msg}; previous instance: {stopped}")


def cmd_start(cfg):
    pid = running_pid(cfg.pidfile)
    if pid is not None:
        try:
            _, version, _ = probe(cfg.bind, cfg.port, "/version")
        except OSError:
            version = "?"
        if version == cfg.version:
            print(f"{describe(cfg)} already running, pid {pid}")
            return
        raise CtlError(f"pid {pid} from {cfg.pidfile} is running version {version}, "
                       f"not {cfg.version}; use deploy to replace it")
    print(f"started {start_and_wait(cfg, time.monotonic())}")


def cmd_stop(cfg):
    print(f"{cfg.pidfile}: {stop_app(cfg.pidfile, cfg.stop_timeout)}")


def cmd_status(cfg):
    pid = running_pid(cfg.pidfile)
    status = {"running": pid is not None, "pid": pid}
    if pid is not None and cfg.port:
        for path, key in (("/version", "version"), ("/health", "health")):
            try:
                code, body, _ = probe(cfg.bind, cfg.port, path)
                status[key] = body if path == "/version" else f"{code} {body}"
            except OSError as exc:
                status[key] = f"unreachable: {exc}"
    print(json.dumps(status))
    return 0 if pid is not None else 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="manage gentle.lb lab app instances")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, need_port):
        sp.add_argument("--pidfile", required=True)
        sp.add_argument("--port", type=int, required=need_port)
        sp.add_argument("--bind", default="127.0.0.1")
        sp.add_argument("--stop-timeout", type=float, default=30.0, help="s to wait after SIGTERM")

    for name in ("deploy", "start"):
        sp = sub.add_parser(name)
        common(sp, need_port=True)
        sp.add_argument("--version", required=True)
        sp.add_argument("--name")
        sp.add_argument("--logfile", help="default: the pidfile with .log")
        sp.add_argument("--health-file")
        sp.add_argument("--break", dest="brk", action="store_true", help="start a build failing /health")
        sp.add_argument("--start-timeout", type=float, default=20.0, help="s to wait for /health")
        sp.add_argument("--keepalive-timeout", type=float)
        sp.add_argument("--grace", type=float, help="the app's own SIGTERM grace (default: its own)")
    common(sub.add_parser("stop"), need_port=False)
    common(sub.add_parser("status"), need_port=False)

    cfg = p.parse_args(argv)
    if cfg.command in ("deploy", "start"):
        cfg.name = cfg.name or f"app-{cfg.port}"
        cfg.logfile = cfg.logfile or os.path.splitext(cfg.pidfile)[0] + ".log"
    return cfg


def main(argv=None):
    cfg = parse_args(argv)
    handler = {"deploy": cmd_deploy, "start": cmd_start, "stop": cmd_stop, "status": cmd_status}
    try:
        return handler[cfg.command](cfg) or 0
    except CtlError as exc:
        print(f"ctl {cfg.command}: FAILED: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ctl {cfg.command}: FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
