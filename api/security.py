"""Bearer tokens: random, shown once, stored only as a SHA-256 digest.

Tokens carry 256 random bits, so a fast hash is enough (no password stretching needed)
and a lookup by digest stays a single indexed query on every request.

A token ends in a short signature of its random part under the server's secret key
(`pc_<random>.<tag>`). It proves nothing about who holds the token (only the database
says that, on every request): it lets a process tell, without the database, a token a
Pollcheck server issued from one an attacker made up. When an address is refused for
flooding bad tokens, observers behind the same address (a carrier's NAT, a mission's
LAN) still get through with their signed tokens (`api.ratelimit.AddressGuard`).
Tokens issued before the signature was added still work; they only lack that pass.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_PREFIX = "pc_"
_TAG_BYTES = 9  # 72 bits: guessing a tag that passes takes 2^71 tries on average


def _tag(random_part: str, key: str) -> str:
    mac = hmac.new(key.encode(), random_part.encode(), hashlib.sha256).digest()[:_TAG_BYTES]
    return base64.urlsafe_b64encode(mac).decode()


def new_token(key: str) -> str:
    """A new token, signed with the server's secret key."""
    random_part = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}{random_part}.{_tag(random_part, key)}"


def signed(token: str, key: str) -> bool:
    """Whether a server with this secret key issued a token of this shape (not whether it
    is valid: it may be revoked, or from another mission)."""
    head, dot, tag = token.rpartition(".")
    if not dot or not head.startswith(TOKEN_PREFIX):
        return False
    return hmac.compare_digest(tag, _tag(head[len(TOKEN_PREFIX) :], key))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
