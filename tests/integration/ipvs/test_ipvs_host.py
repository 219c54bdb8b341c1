# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On the host, outside the guest: a kernel without IPVS, and no ipvsadm.

The kernel case runs only where the host really has no IPVS (neither loaded
nor loadable): ipvsadm loads ip_vs by itself, and these tests must never
touch a real director's table or load modules on a developer's machine."""

import os
import platform
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from helpers import run_module  # noqa: E402  pylint: disable=wrong-import-position


def host_has_ipvs():
    if os.path.exists("/proc/net/ip_vs"):
        return True
    release = platform.release()
    for name in ("modules.dep", "modules.builtin"):
        try:
            with open(os.path.join("/lib/modules", release, name)) as handle:
                if "/ip_vs.ko" in handle.read():
                    return True
        except IOError:
            continue
    return False


def ipvsadm_path():
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.access(os.path.join(directory, "ipvsadm"), os.X_OK):
            return directory
    return None


@pytest.mark.skipif(os.environ.get("LAB_UML_GUEST") == "1", reason="host-only test")
@pytest.mark.parametrize("module, args", [
    ("ipvs_member_info", {}),
    ("ipvs_member", dict(address="10.0.0.1", state="drained", state_file="/nonexistent/never-written.json")),
])
def test_kernel_without_ipvs(module, args):
    if host_has_ipvs():
        pytest.skip("this host's kernel has IPVS (loaded or loadable); the no-IPVS path is checked only on "
                    "hosts without it, so that no test loads ip_vs or reads a real director's table")
    if ipvsadm_path() is None:
        pytest.fail("ipvsadm is not installed on the host (make setup installs it)")
    env = {"PATH": ipvsadm_path() + os.pathsep + os.environ.get("PATH", "")}
    result = run_module(module, args, env=env)
    assert result.failed
    assert result["msg"] == ("ipvsadm: this kernel has no IP Virtual Server (ip_vs module missing: Can't initialize "
                             "ipvs: Protocol not available); load it with modprobe ip_vs, or run the task on the "
                             "director")
    assert not os.path.exists("/nonexistent/never-written.json")


@pytest.mark.skipif(os.environ.get("LAB_UML_GUEST") == "1", reason="host-only test")
def test_ipvsadm_missing_on_the_host():
    result = run_module("ipvs_member", dict(address="10.0.0.1", state="drained"),
                        env={"PATH": "/nonexistent"})
    assert result.failed
    assert result["msg"].startswith("ipvsadm: not installed on this director (not found in PATH=/nonexistent); "
                                    "install the ipvsadm package")


@pytest.mark.skipif(os.environ.get("LAB_UML_GUEST") == "1", reason="host-only test")
@pytest.mark.parametrize("module, args, message", [
    ("ipvs_member", dict(address="10.0.0.1\n", state="drained"),
     "address '10.0.0.1\\n': has blanks around it or a line break or control character in it; give the value alone"),
    ("ipvs_member", dict(address=["10.0.0.2", "10.0.0.1\n"], state="drained"),
     "address '10.0.0.1\\n': has blanks around it or a line break or control character in it; give the value alone"),
    ("ipvs_member", dict(address="10.0.0.1", state="drained", virtual_service="tcp:10.0.0.100:80\n"),
     "virtual_service 'tcp:10.0.0.100:80\\n': has blanks around it or a line break or control character in it; "
     "give the value alone"),
    ("ipvs_member", dict(address="10.0.0.1", state="present", virtual_service=["fwmark:7\n"]),
     "virtual_service 'fwmark:7\\n': has blanks around it or a line break or control character in it; "
     "give the value alone"),
    ("ipvs_member_info", dict(address="10.0.0.1\n"),
     "address '10.0.0.1\\n': has blanks around it or a line break or control character in it; give the value alone"),
    ("ipvs_member_info", dict(virtual_service="TCP 10.0.0.100:80\n"),
     "virtual_service 'TCP 10.0.0.100:80\\n': has blanks around it or a line break or control character in it; "
     "give the value alone"),
])
def test_a_name_with_a_trailing_newline_is_refused_before_any_ipvsadm_run(module, args, message):
    """Full-string checks: nothing is stripped.  PATH has no ipvsadm, so had the
    check let the name through, the result would say ipvsadm is missing."""
    result = run_module(module, dict(args, state_file="/nonexistent/never-written.json")
                        if module == "ipvs_member" else args, env={"PATH": "/nonexistent"})
    assert result.failed
    assert result["error_type"] == "InvalidInputError"
    assert result["msg"] == message
    assert "\n" not in result["msg"]
    assert not os.path.exists("/nonexistent/never-written.json")
