"""Bearer tokens: random, shown once, stored only as a SHA-256 digest.

Tokens carry 256 random bits, so a fast hash is enough (no password stretching needed)
and a lookup by digest stays a single indexed query on every request.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "pc_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
