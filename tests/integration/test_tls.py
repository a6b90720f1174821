"""`dagbroker serve` over TLS: HTTPS with its certificate; mTLS refuses clients without one
signed by --client-ca. Real processes, certificates made here with `cryptography`."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from e2e.cluster import Cluster

from broker.config import Settings
from broker.tls import TLSConfigError, context_from_settings

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: str, issuer: x509.Name, key: Key) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


def make_ca(cn: str) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(cn, _name(cn), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(ca: tuple[x509.Certificate, Key], cn: str, server: bool) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(cn, ca[0].subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


def write(dir_: Path, name: str, pair: tuple[x509.Certificate, Key]) -> tuple[str, str]:
    cert, key = dir_ / f"{name}.pem", dir_ / f"{name}.key"
    cert.write_bytes(pair[0].public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        pair[1].private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert), str(key)


class PKI:
    """A CA with a server and a client certificate, and a client certificate of another CA."""

    def __init__(self, dir_: Path) -> None:
        ca, other = make_ca("dagbroker test CA"), make_ca("some other CA")
        self.ca, _ = write(dir_, "ca", ca)
        self.server = write(dir_, "server", issue(ca, "localhost", server=True))
        self.client = write(dir_, "client", issue(ca, "front-end", server=False))
        self.stranger = write(dir_, "stranger", issue(other, "front-end", server=False))

    def context(self, client: tuple[str, str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        if client is not None:
            ctx.load_cert_chain(*client)
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def cluster(
    redis_server: Any, prefix: str, tmp_path: Path, child_env: dict[str, str]
) -> Iterator[Cluster]:
    c = Cluster(redis_server.url, prefix, tmp_path, child_env)
    yield c
    c.stop_all()


def get(url: str, ctx: ssl.SSLContext, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        return r.status, json.loads(r.read())


async def ws_first_message(url: str, ctx: ssl.SSLContext, token: str) -> Any:
    async with aiohttp.ClientSession() as http, http.ws_connect(
        url.replace("https://", "wss://") + f"/api/v1/ws?token={token}", ssl=ctx
    ) as ws:
        return await ws.receive_json(timeout=10)


def test_https(cluster: Cluster, pki: PKI) -> None:
    _, url = cluster.start_broker(
        "--tls-cert", pki.server[0], "--tls-key", pki.server[1], tls=pki.context()
    )
    assert url.startswith("https://")
    assert get(f"{url}/api/v1/health/live", pki.context()) == (200, {"status": "ok"})
    token = (cluster.data_dir / "admin.token").read_text().strip()
    status, body = get(f"{url}/api/v1/status", pki.context(), token)
    assert status == 200 and "queues" in body
    assert asyncio.run(ws_first_message(url, pki.context(), token))["type"] == "hello"  # WSS
    address = json.loads((cluster.data_dir / "broker.json").read_text())
    assert address["url"].startswith("https://127.0.0.1:")
    with pytest.raises(urllib.error.URLError) as refused:  # a client not trusting our CA
        urllib.request.urlopen(f"{url}/api/v1/health/live", timeout=10,
                               context=ssl.create_default_context())
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    with pytest.raises(OSError):  # plain HTTP on the TLS port
        urllib.request.urlopen(url.replace("https", "http") + "/api/v1/health/live", timeout=10)


def test_mutual_tls(cluster: Cluster, pki: PKI) -> None:
    _, url = cluster.start_broker(
        "--tls-cert", pki.server[0], "--tls-key", pki.server[1], "--client-ca", pki.ca,
        tls=pki.context(pki.client),
    )
    live = f"{url}/api/v1/health/live"
    assert get(live, pki.context(pki.client)) == (200, {"status": "ok"})
    for refused in (pki.context(), pki.context(pki.stranger)):  # no certificate; another CA's
        with pytest.raises(OSError):
            get(live, refused)


def test_incomplete_tls_options_are_refused(tmp_path: Path, pki: PKI) -> None:
    base = {"data_dir": str(tmp_path)}
    assert context_from_settings(Settings(**base)) is None
    bad = [
        {"client_ca": pki.ca},
        {"tls_cert": pki.server[0]},
        {"tls_cert": pki.server[0], "tls_key": str(tmp_path / "missing.key")},
        {"tls_cert": pki.server[0], "tls_key": pki.client[1]},  # not this certificate's key
    ]
    for opts in bad:
        with pytest.raises(TLSConfigError):
            context_from_settings(Settings(**base, **opts))
    out = subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "serve", "--data-dir", str(tmp_path),
         "--client-ca", pki.ca],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2 and "--client-ca needs --tls-cert" in out.stderr
