# -*- coding: utf-8 -*-
"""tools/find-python, which `make demo` and `make test` use to create .venv:
it finds a Python 3.12+ with venv where one is installed (here: under a pyenv
root), says what to install when there is none, and names the missing venv
package when the only new-enough Python lacks it.  Each case runs with a PATH
and HOME of its own, holding stand-in interpreters."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import REPO  # noqa: E402

FIND_PYTHON = os.path.join(REPO, "tools", "find-python")
# A Python older than 3.12: every check fails.
OLD_PYTHON = "#!/bin/sh\nexit 1\n"
# A Python 3.13 without ensurepip (Debian's python3.13 without python3.13-venv).
NO_VENV_PYTHON = """#!/bin/sh
case "$2" in
  *ensurepip*) exit 1 ;;
  *print*) echo 3.13 ;;
esac
exit 0
"""


@pytest.fixture
def machine(tmp_path):
    """(bin directory, home directory, environment): only the commands the script uses."""
    bindir, home = tmp_path / "bin", tmp_path / "home"
    bindir.mkdir()
    home.mkdir()
    for tool in ("dirname", "sh"):
        os.symlink(subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True, text=True,
                                  check=True).stdout.strip(), str(bindir / tool))
    script(bindir / "apt-cache", "#!/bin/sh\nexit 100\n")      # no Debian python3.13-venv to install
    env = {"PATH": str(bindir), "HOME": str(home)}
    return bindir, home, env


def script(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def find(env):
    return subprocess.run(["/bin/sh", FIND_PYTHON], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_no_new_enough_python_names_the_fix(machine):
    bindir, _home, env = machine
    script(bindir / "python3", OLD_PYTHON)
    proc = find(env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "no Python 3.12 or newer found" in proc.stderr
    assert "pyenv install 3.13" in proc.stderr and "make PYTHON=/path/to/python3.13" in proc.stderr
    assert "apt-get install python3.13-venv" in proc.stderr


def test_a_pyenv_version_is_found(machine):
    bindir, home, env = machine
    script(bindir / "python3", OLD_PYTHON)
    real = home / ".pyenv" / "versions" / "3.13.9" / "bin" / "python3.13"
    real.parent.mkdir(parents=True)
    os.symlink(sys.executable, str(real))          # the tests' own Python: 3.12 or newer, with venv
    proc = find(env)
    assert proc.returncode == 0, proc.stderr
    found = proc.stdout.strip()
    version = subprocess.run([found, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "True", found


def test_a_python_without_venv_names_its_package(machine):
    bindir, _home, env = machine
    script(bindir / "python3.13", NO_VENV_PYTHON)
    proc = find(env)
    assert proc.returncode == 1
    assert "has no venv/ensurepip module" in proc.stderr and "apt-get install python3.13-venv" in proc.stderr


def test_python_given_is_checked(machine):
    bindir, _home, env = machine
    script(bindir / "old", OLD_PYTHON)
    proc = find(dict(env, PYTHON=str(bindir / "old")))
    assert proc.returncode == 1 and "not Python 3.12 or newer" in proc.stderr
    proc = find(dict(env, PYTHON=sys.executable))
    assert proc.returncode == 0 and proc.stdout.strip() == sys.executable
