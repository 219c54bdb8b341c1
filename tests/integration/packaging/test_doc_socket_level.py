# -*- coding: utf-8 -*-
"""What docs/haproxy.md says about the runtime API socket's level, checked
against the real binaries: a ``stats socket`` line without ``level`` is
``operator`` (unix and TCP alike), which reads but may not change servers;
and no other page states a different default."""

import glob
import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import REPO  # noqa: E402

sys.path.insert(0, REPO)
from lab.haproxy_lab import BINARIES, find_binary, free_port  # noqa: E402

CONFIG = """global
    stats socket {unix}
    stats socket ipv4@127.0.0.1:{port}
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
backend app
    server web1 127.0.0.1:{dead} check
"""


def ask(address, command):
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family) as conn:
        conn.settimeout(5)
        conn.connect(address)
        conn.sendall(command.encode() + b"\n")
        answer = b""
        while True:
            data = conn.recv(4096)
            if not data:
                return answer.decode().strip()
            answer += data


def wait_for(address, deadline):
    while True:
        try:
            return ask(address, "show cli level")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("version", sorted(BINARIES))
def test_a_socket_without_level_is_operator(version, tmp_path):
    workdir = tempfile.mkdtemp(prefix="lvl-")       # short: unix socket paths are limited to 108 bytes
    unix, port = os.path.join(workdir, "s.sock"), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(unix=unix, port=port, dead=free_port()))
    proc = subprocess.Popen([str(find_binary(version)), "-db", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        for address in (unix, ("127.0.0.1", port)):
            assert wait_for(address, deadline) == "operator", (version, address)
            assert "Permission denied" in ask(address, "disable server app/web1")
            assert "web1" in ask(address, "show servers state app")       # reading works
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)


def test_the_docs_state_operator_as_the_default_and_nothing_else():
    with open(os.path.join(REPO, "docs", "haproxy.md")) as handle:
        text = " ".join(handle.read().split())
    assert "A `stats socket` line without `level` gets HAProxy's default, **`operator`**" in text
    for path in glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True) + \
            [os.path.join(REPO, "README.md")]:
        with open(path) as handle:
            flat = " ".join(handle.read().split()).lower()
        assert "default level for a unix socket is `admin`" not in flat, path
        assert "(haproxy's default)" not in flat, path
