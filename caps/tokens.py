"""Bearer tokens for capabilities: 256 random bits, stored only as a hash.

A token is ``aos1_`` followed by 43 base64url characters. The ``tokens``
family maps SHA-256(token) to a grant id, so a stolen database yields no
usable token. Lookups are by hash and the stored hash is then compared with
``hmac.compare_digest``, so response timing says nothing about the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from aos.errors import InvalidToken
from aos.kernel.store import KernelStore, Op

PREFIX = "aos1_"
_TOKEN = re.compile(r"aos1_[A-Za-z0-9_-]{43}")


def new_token() -> str:
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def token_hash(token: str) -> bytes:
    if not isinstance(token, str) or _TOKEN.fullmatch(token) is None:
        raise InvalidToken("malformed token")
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    def __init__(self, store: KernelStore) -> None:
        self._store = store

    def mint_ops(self, grant_id: str) -> tuple[str, list[Op]]:
        token = new_token()
        digest = token_hash(token)
        return token, [Op("tokens", digest, digest + grant_id.encode())]

    def resolve(self, token: str) -> str:
        """The grant id a token stands for; ``InvalidToken`` if unknown or dropped."""
        digest = token_hash(token)
        row = self._store.get("tokens", digest)
        if row is None or not hmac.compare_digest(row[:32], digest):
            raise InvalidToken("unknown or dropped token")
        return row[32:].decode()

    def drop_ops(self, token: str) -> list[Op]:
        return [Op("tokens", token_hash(token), None)]
