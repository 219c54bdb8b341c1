# -*- coding: utf-8 -*-
"""The AWX credential types in docs/awx/ inject exactly the environment variables
the modules read as fallbacks: a renamed variable on either side fails here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import yaml

from ansible_collections.gentle.lb.plugins.module_utils import specs

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "awx")


def env_fallbacks(spec):
    names = set()
    if spec is specs.HAPROXY_CONNECTION_ARGS:
        names.update(specs.HAPROXY_TRANSPORT_ENV.values())
    for option in spec.values():
        fallback = option.get("fallback")
        if fallback:
            names.update(fallback[1])
    return names


# Each balancer's credential types, together, inject every variable its modules read.
TYPES = [
    (("credential_type_haproxy_stats.yml", "credential_type_haproxy_socket.yml"), specs.HAPROXY_CONNECTION_ARGS),
    (("credential_type_f5.yml",), specs.F5_CONNECTION_ARGS),
]


@pytest.mark.parametrize("filenames, spec", TYPES)
def test_injectors_match_module_fallbacks(filenames, spec):
    injected, secrets = set(), set()
    for filename in filenames:
        with open(os.path.join(DOCS, filename)) as handle:
            credential_type = yaml.safe_load(handle)
        names = set(credential_type["injectors"]["env"])
        assert not names & injected, "two types inject %s" % (names & injected)
        injected |= names
        field_ids = set(field["id"] for field in credential_type["inputs"]["fields"])
        for template in credential_type["injectors"]["env"].values():
            assert template.strip("{} ") in field_ids
        secrets |= set(f["id"] for f in credential_type["inputs"]["fields"] if f.get("secret"))
    assert injected == env_fallbacks(spec)
    assert secrets == set(k for k, v in spec.items() if v.get("no_log")), "no_log options are secret fields"
