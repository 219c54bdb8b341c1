# -*- coding: utf-8 -*-
"""The AWX-path tests (ansible-runner, module_defaults, injected credentials)
import the repository's labs and tests/integration/helpers.py."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
for path in (REPO, os.path.dirname(HERE), HERE):
    if path not in sys.path:
        sys.path.insert(0, path)
