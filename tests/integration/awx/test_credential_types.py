# -*- coding: utf-8 -*-
"""The credential types of docs/awx/ are ones AWX accepts, and a credential
that cannot connect is refused by AWX instead of running a job that fails
late: an empty HAProxy credential, a stats page or runtime API address
without scheme or host, an F5 credential without server, user or password."""

import jsonschema
import pytest

from awx_credentials import CREDENTIAL_TYPES, CredentialRefused, check_credential, check_credential_type, load


@pytest.mark.parametrize("filename", CREDENTIAL_TYPES)
def test_awx_accepts_the_credential_type(filename):
    credential_type = load(filename)
    check_credential_type(credential_type)
    assert credential_type["kind"] == "cloud", \
        "kind net would make AWX set ANSIBLE_NET_* from it (empty: these types have no username field)"
    assert credential_type["inputs"]["required"], "a credential of this type must say where to connect"


def test_the_type_check_refuses_what_awx_refuses():
    credential_type = load("credential_type_haproxy_socket.yml")
    with pytest.raises(jsonschema.ValidationError):
        check_credential_type(dict(credential_type, inputs=dict(credential_type["inputs"], dependencies={})))
    with pytest.raises(AssertionError):
        check_credential_type(dict(credential_type, injectors={"env": {"ANSIBLE_NET_USERNAME": "{{ socket }}"}}))


@pytest.mark.parametrize("filename, inputs, refused", [
    ("credential_type_haproxy_stats.yml", {}, "required fields (stats_url)"),
    ("credential_type_haproxy_stats.yml", {"stats_url": "", "stats_user": "admin"}, "stats_url: Invalid URL"),
    ("credential_type_haproxy_stats.yml", {"stats_url": "lb1:8404/stats"}, "stats_url: Invalid URL"),
    ("credential_type_haproxy_socket.yml", {}, "required fields (socket)"),
    ("credential_type_haproxy_socket.yml", {"socket": "lb1:9999"}, "socket: Invalid URL"),
    ("credential_type_f5.yml", {"server": "bigip1"}, "required fields (password, user)"),
    ("credential_type_f5.yml", {}, "required fields (password, server, user)"),
])
def test_a_credential_that_cannot_connect_is_refused(filename, inputs, refused):
    with pytest.raises(CredentialRefused) as answer:
        check_credential(load(filename), inputs)
    assert refused in str(answer.value)


@pytest.mark.parametrize("filename, inputs", [
    ("credential_type_haproxy_stats.yml", {"stats_url": "https://lb1:8404/stats", "stats_user": "admin",
                                           "stats_password": "s3cret", "validate_certs": True}),
    ("credential_type_haproxy_stats.yml", {"stats_url": "http://127.0.0.1:8404/stats"}),
    ("credential_type_haproxy_socket.yml", {"socket": "tcp://lb1:9999"}),
    ("credential_type_f5.yml", {"server": "bigip1", "user": "deploy", "password": "s3cret"}),
])
def test_a_credential_that_names_its_endpoint_is_accepted(filename, inputs):
    check_credential(load(filename), inputs)
