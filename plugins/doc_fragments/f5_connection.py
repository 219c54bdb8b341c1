# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors F5_CONNECTION_ARGS in plugins/module_utils/specs.py.
    DOCUMENTATION = r"""
options:
  server:
    description:
      - The BIG-IP management address (host name or IP address).
      - If not set here or in O(provider), the environment variable E(F5_SERVER) is used.
    type: str
  server_port:
    description:
      - The BIG-IP management port. Defaults to V(443).
      - If not set here or in O(provider), the environment variable E(F5_SERVER_PORT) is used.
    type: int
  user:
    description:
      - The user to log in as (token login with login provider C(tmos); basic authentication as fallback).
      - If not set here or in O(provider), the environment variable E(F5_USER) is used.
    type: str
  password:
    description:
      - The user's password.
      - If not set here or in O(provider), the environment variable E(F5_PASSWORD) is used.
    type: str
  validate_certs:
    description:
      - Verify the device's TLS certificate. Defaults to V(true).
      - If not set here or in O(provider), the environment variable E(F5_VALIDATE_CERTS) is used.
    type: bool
  transport:
    description:
      - V(rest) uses iControl REST; V(soap) uses iControl SOAP through the C(bigsuds) library, for old devices.
      - Defaults to V(rest).
    type: str
    choices: [rest, soap]
  timeout:
    description:
      - Seconds one request may take as a whole, from connecting to the last byte of the answer (a device
        that answers a byte at a time is cut off too). Defaults to V(30).
      - A read that timed out is not retried; a read that got a 5xx answer or a dropped connection is.
    type: float
  token_cache:
    description:
      - Keep the login token between tasks (O(transport=rest)), so that a task on the same device and user
        reuses it instead of logging in, and does not delete it at the end. A token is renewed when it has
        less than a minute left or the device refuses it.
      - The token is a bearer credential for its lifetime (the device's, 1200 seconds by default, never
        extended). It is written to a file readable by the user running the module only, in
        C($XDG_CACHE_HOME/gentle.lb/f5-tokens) (else C(~/.cache/gentle.lb/f5-tokens), or
        E(GENTLE_LB_F5_TOKEN_DIR)), in a directory of mode C(0700). The password is never written; a salted
        PBKDF2 verifier is, so a task with another password logs in instead of reusing the token.
      - V(false) logs in for every task and deletes the token at its end; for a whole play, set it in
        C(module_defaults) (group C(gentle.lb.f5)).
      - Defaults to V(true).
    type: bool
  provider:
    description:
      - The same connection options as one dictionary, as F5's own modules accept them.
        Options given at the top level win over the same keys in O(provider).
    type: dict
    suboptions:
      server:
        description: See O(server).
        type: str
      server_port:
        description: See O(server_port).
        type: int
      user:
        description: See O(user).
        type: str
      password:
        description: See O(password).
        type: str
      validate_certs:
        description: See O(validate_certs).
        type: bool
      transport:
        description: See O(transport).
        type: str
        choices: [rest, soap]
      timeout:
        description: See O(timeout).
        type: float
      token_cache:
        description: See O(token_cache).
        type: bool
"""
