# -*- coding: utf-8 -*-
"""The credential types of docs/awx/ as AWX treats them, without an AWX:

* ``check_credential_type``: what AWX accepts as a custom credential type
  (awx/main/fields.py, CredentialTypeInputField and CredentialTypeInjectorField;
  its JSON schema is transcribed here);
* ``check_credential``: what AWX refuses in a credential of that type -- a
  value a field's ``format`` rejects when the credential is saved
  (CredentialInputField with its format checkers), and a required field left
  blank when a job using it starts (UnifiedJob.pre_start);
* ``render_injectors``: the environment a job gets from it
  (CredentialType.inject_credential).
"""

import os
import urllib.parse

import jsonschema
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
AWX_DOCS = os.path.join(REPO, "docs", "awx")
CREDENTIAL_TYPES = ("credential_type_haproxy_stats.yml", "credential_type_haproxy_socket.yml",
                    "credential_type_f5.yml")
ALL_INJECTED = ("HAPROXY_SOCKET", "HAPROXY_STATS_URL", "HAPROXY_STATS_USER", "HAPROXY_STATS_PASSWORD",
                "HAPROXY_VALIDATE_CERTS", "F5_SERVER", "F5_SERVER_PORT", "F5_USER", "F5_PASSWORD",
                "F5_VALIDATE_CERTS")

# CredentialTypeInputField.schema, for a custom (not managed) type.
INPUTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "required": {"type": "array", "items": {"type": "string"}},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["string", "boolean"]},
                    "format": {"enum": ["ssh_private_key", "url"]},
                    "choices": {"type": "array", "minItems": 1, "items": {"type": "string"}, "uniqueItems": True},
                    "id": {"type": "string", "pattern": "^[a-zA-Z_]+[a-zA-Z0-9_]*$"},
                    "label": {"type": "string"},
                    "help_text": {"type": "string"},
                    "multiline": {"type": "boolean"},
                    "secret": {"type": "boolean"},
                    "ask_at_runtime": {"type": "boolean"},
                    "default": {},
                },
                "additionalProperties": False,
                "required": ["id", "label"],
            },
        },
    },
}
# CredentialTypeInjectorField.schema (file, env, extra_vars).
INJECTORS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "file": {"type": "object", "patternProperties": {r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$": {"type": "string"}},
                 "additionalProperties": False},
        "env": {"type": "object",
                "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string", "pattern": "^[\x00-\x7F]*$"}},
                "additionalProperties": False},
        "extra_vars": {"type": "object", "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string"}},
                       "additionalProperties": False},
    },
}


class CredentialRefused(Exception):
    """What AWX answers instead of saving the credential or starting the job."""


def load(filename):
    with open(os.path.join(AWX_DOCS, filename)) as handle:
        return yaml.safe_load(handle)


def check_credential_type(credential_type):
    """Raise jsonschema.ValidationError / AssertionError where AWX would refuse the type."""
    assert credential_type["kind"] in ("cloud", "net"), "custom credential types are cloud or net"
    jsonschema.validate(credential_type["inputs"], INPUTS_SCHEMA)
    jsonschema.validate(credential_type["injectors"], INJECTORS_SCHEMA)
    ids = [field["id"] for field in credential_type["inputs"]["fields"]]
    assert len(ids) == len(set(ids)) and "tower" not in ids
    for field in credential_type["inputs"]["fields"]:
        if "default" in field:
            assert isinstance(field["default"], {"string": str, "boolean": bool}[field.get("type", "string")])
        if field.get("type") == "boolean":
            assert not set(field) & {"choices", "multiline", "format", "secret"}, field
    assert set(credential_type["inputs"].get("required", [])) <= set(ids)
    # validate_env_var_allowed: AWX drops these at job start.
    assert not [name for name in credential_type["injectors"].get("env", {}) if name.startswith("ANSIBLE_")]


def format_url(value):
    """AWX's 'url' format checker: a scheme and a host."""
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme == "":
        return "Invalid URL: Missing url scheme (http, https, etc.)"
    if parsed.netloc == "":
        return "Invalid URL: %s" % value
    return None


def check_credential(credential_type, inputs):
    """Raise CredentialRefused where AWX refuses ``inputs``: at save for a
    value its field's format rejects, at job start for a blank required field."""
    fields = dict((field["id"], field) for field in credential_type["inputs"]["fields"])
    for name, value in inputs.items():
        if name not in fields:
            raise CredentialRefused("%s: Additional properties are not allowed" % name)
        if fields[name].get("format") == "url":
            problem = format_url(value)
            if problem:
                raise CredentialRefused("%s: %s" % (name, problem))
    missing = sorted(name for name in credential_type["inputs"].get("required", [])
                     if inputs.get(name) in (None, ""))
    if missing:
        raise CredentialRefused("Job cannot start because Credential %s does not provide one or more required "
                                "fields (%s)." % (credential_type["name"], ", ".join(missing)))


def render_injectors(filename, inputs):
    """The environment a job gets from a credential of docs/awx/<filename> with
    ``inputs``, rendered as AWX does (awx/main/models/credential,
    CredentialType.inject_credential): a sandboxed Jinja environment; blank
    fields are left out of the namespace, so their templates render as ''; a
    boolean field the credential does not set is False, whatever the type's
    default.  Every other gentle.lb variable is set to '' so nothing comes from
    the caller's own environment."""
    credential_type = load(filename)
    check_credential(credential_type, inputs)
    namespace = dict((k, v) for k, v in inputs.items() if isinstance(v, bool) or len(v))
    for field in credential_type["inputs"]["fields"]:
        if field["type"] == "boolean" and field["id"] not in inputs:
            namespace[field["id"]] = False
    sandbox = ImmutableSandboxedEnvironment()
    env = dict((name, sandbox.from_string(template).render(**namespace))
               for name, template in credential_type["injectors"]["env"].items())
    return dict(dict.fromkeys(ALL_INJECTED, ""), **env)
