"""Test helpers shipped with the package, so users can test their own clients and
worlds the way we test ours: ``KernelProcess`` puts a real kernel in a subprocess;
``self_signed_certificate`` makes the PEM files for ``--tls-cert/--tls-key``.
"""

import os
import subprocess

from aos.kernel.process import KernelProcess, KernelStartError

__all__ = ["KernelProcess", "KernelStartError", "self_signed_certificate"]


def self_signed_certificate(directory: str | os.PathLike[str], name: str = "cert") -> tuple[str, str]:
    """``(certificate, key)`` PEM files in ``directory``: a self-signed certificate for localhost and
    127.0.0.1, made with openssl as docs/clients.md shows (clients trust it with ``--tls-ca`` itself)."""
    cert, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key
