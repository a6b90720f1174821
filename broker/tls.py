"""TLS for `dagbroker serve`: HTTPS (and WSS) with an optional client-certificate requirement.

`--tls-cert` / `--tls-key` serve HTTPS; `--client-ca` additionally requires every client to
present a certificate signed by that CA (mTLS), for deployments where only trusted front ends
(a reverse proxy, an API gateway) may connect. TLS 1.2 is the minimum.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from broker.config import Settings


class TLSConfigError(ValueError):
    """The TLS options are incomplete or their files cannot be loaded."""


def _readable(flag: str, path: str) -> None:
    if not Path(path).is_file():
        raise TLSConfigError(f"{flag}: no such file: {path}")


def server_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server-side SSLContext; with `client_ca`, client certificates are required."""
    _readable("--tls-cert", cert)
    _readable("--tls-key", key)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise TLSConfigError(f"cannot load --tls-cert/--tls-key: {e}") from e
    if client_ca:
        _readable("--client-ca", client_ca)
        try:
            ctx.load_verify_locations(cafile=client_ca)
        except (ssl.SSLError, OSError) as e:
            raise TLSConfigError(f"cannot load --client-ca: {e}") from e
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def context_from_settings(settings: Settings) -> ssl.SSLContext | None:
    """The server SSLContext the settings ask for, or None for plain HTTP."""
    if not settings.tls_cert and not settings.tls_key:
        if settings.client_ca:
            raise TLSConfigError("--client-ca needs --tls-cert and --tls-key")
        return None
    if not settings.tls_cert or not settings.tls_key:
        raise TLSConfigError("give both --tls-cert and --tls-key")
    return server_context(settings.tls_cert, settings.tls_key, settings.client_ca)
