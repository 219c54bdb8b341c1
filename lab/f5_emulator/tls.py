"""A throwaway self-signed certificate, made with the openssl CLI at start.

Real devices serve iControl on HTTPS only, so the emulator does too by
default. The certificate names localhost and 127.0.0.1 and is its own CA:
clients may pass its path as the CA bundle to test verified TLS, or turn
verification off as most F5 users do.
"""
import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path


class TLSUnavailable(RuntimeError):
    pass


def make_self_signed(directory, host="127.0.0.1"):
    """Write cert.pem and key.pem into ``directory``; return their paths.
    The certificate names localhost, 127.0.0.1, ::1 and ``host``."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise TLSUnavailable("the openssl command is needed to make the emulator's certificate "
                             "(apt-get install openssl), or start the emulator with --http")
    directory = Path(directory)
    cert, key = directory / "cert.pem", directory / "key.pem"
    cmd = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30",
           "-subj", "/CN=localhost/O=gentle.lb F5 emulator",
           # Strict verifiers (Python 3.13's default) want a CA that says so
           # critically and may sign certificates, and a SAN for the host.
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1%s" % _extra_name(host)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise TLSUnavailable("openssl could not make a certificate: %s" % result.stderr.strip())
    return str(cert), str(key)


def _extra_name(host):
    if host in ("localhost", "127.0.0.1", "::1", "0.0.0.0", "::"):
        return ""
    try:
        ipaddress.ip_address(host)
        return ",IP:" + host
    except ValueError:
        return ",DNS:" + host


def server_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
