"""TLS for the daemons' TCP listeners (``--tls-cert/--tls-key``), shared by ``aos-kernel`` and ``aos-scheduler``.

``check_listener_files`` is the start-up check (one ``InvalidArgument`` line for a
missing half, a missing file, or files that are not a usable PEM certificate and
key); ``listener_context`` is the server context both daemons listen with.
Clients check a listener with ``aos.kernel.client.TlsOptions``.
"""

from __future__ import annotations

import os
import ssl

from aos.errors import InvalidArgument


def listener_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def check_listener_files(cert: str | None, key: str | None) -> None:
    """Refuse ``--tls-cert``/``--tls-key`` that cannot work, before anything starts."""
    if bool(cert) != bool(key):
        raise InvalidArgument("--tls-cert and --tls-key go together")
    if not cert or not key:
        return
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not os.path.isfile(path):
            raise InvalidArgument(f"{option} {path}: no such file")
    try:
        listener_context(cert, key)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise InvalidArgument(f"--tls-cert {cert} / --tls-key {key}: not a usable PEM "
                              f"certificate and key ({reason})") from None


def trusted_ca(option: str | None) -> str:
    """The CA file a daemon trusts for its outgoing TLS connections (``--tls-ca``, else ``$AOS_TLS_CA``,
    else "": the system's CAs). Its own listener's certificate does not enter into it."""
    return option if option is not None else os.environ.get("AOS_TLS_CA", "")


def check_trusted_ca(path: str) -> None:
    """Refuse a ``--tls-ca`` that is missing or holds no PEM certificate, before anything starts."""
    if not path:
        return
    if not os.path.isfile(path):
        raise InvalidArgument(f"--tls-ca {path}: no such file")
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        raise InvalidArgument(f"--tls-ca {path}: not a PEM certificate ({exc.reason or exc})") from None
