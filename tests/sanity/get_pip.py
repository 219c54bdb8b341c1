# -*- coding: utf-8 -*-
"""A stand-in for get-pip.py for ``ansible-test sanity`` on machines that reach
PyPI but not ci-files.testing.ansible.com, from where ansible-test downloads its
pip bootstrap script.  ansible-test runs it inside each fresh sanity virtualenv
with the packages to install (e.g. ``pip==25.2``); we bootstrap the interpreter's
bundled pip with ensurepip, then let that pip install the requested packages
from PyPI.  ``make sanity`` copies it to ~/.ansible/test/cache/get_pip_<ver>.py.
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

# ansible-test runs this with a cleaned environment, and an old bundled pip does not
# use the system's CA store: behind a TLS-inspecting proxy it needs the bundle named.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
if "PIP_CERT" not in os.environ and os.path.exists(SYSTEM_CA_BUNDLE):
    os.environ["PIP_CERT"] = SYSTEM_CA_BUNDLE

# ensurepip scrubs PIP_* variables and pip's configuration from os.environ; the
# real install must see them again (index, certificates, constraints).
environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True, default_pip=True)
arguments = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + arguments, env=environment))
