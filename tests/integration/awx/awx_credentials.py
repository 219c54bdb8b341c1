# -*- coding: utf-8 -*-
"""Render the credential types of docs/awx/ the way AWX renders them for a job."""

import os

import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
AWX_DOCS = os.path.join(REPO, "docs", "awx")
ALL_INJECTED = ("HAPROXY_SOCKET", "HAPROXY_STATS_URL", "HAPROXY_STATS_USER", "HAPROXY_STATS_PASSWORD",
                "HAPROXY_VALIDATE_CERTS", "F5_SERVER", "F5_SERVER_PORT", "F5_USER", "F5_PASSWORD",
                "F5_VALIDATE_CERTS")


def render_injectors(filename, inputs):
    """The environment a job gets from a credential of docs/awx/<filename> with
    ``inputs``, rendered as AWX does (awx/main/models/credential,
    CredentialType.inject_credential): a sandboxed Jinja environment; blank
    fields are left out of the namespace, so their templates render as ''; a
    boolean field the credential does not set is False, whatever the type's
    default.  Every other gentle.lb variable is set to '' so nothing comes from
    the caller's own environment."""
    with open(os.path.join(AWX_DOCS, filename)) as handle:
        credential_type = yaml.safe_load(handle)
    for field in credential_type["inputs"].get("required", []):
        assert inputs.get(field) not in (None, ""), "AWX refuses a credential without %s" % field
    namespace = dict((k, v) for k, v in inputs.items() if isinstance(v, bool) or len(v))
    for field in credential_type["inputs"]["fields"]:
        if field["type"] == "boolean" and field["id"] not in inputs:
            namespace[field["id"]] = False
    sandbox = ImmutableSandboxedEnvironment()
    env = dict((name, sandbox.from_string(template).render(**namespace))
               for name, template in credential_type["injectors"]["env"].items())
    return dict(dict.fromkeys(ALL_INJECTED, ""), **env)
