"""Bearer tokens: who is calling.

Every endpoint but ``/health`` needs ``Authorization: Bearer <token>``. Tokens are compared in
constant time (HMAC digests of the presented and configured tokens, every configured token
compared on every request), so neither a token's content nor which user it belongs to can be
learnt from response times. Each token names a user; a user sees only their own jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


class TokenVerifier:
    """Maps a presented token to its user, or ``None``."""

    def __init__(self, tokens: dict[str, str]) -> None:
        # Digests under a per-process key: comparisons are fixed-length whatever the input.
        self._key = secrets.token_bytes(32)
        self._digests = [(user, self._digest(token)) for user, token in tokens.items()]

    def _digest(self, token: str) -> bytes:
        return hmac.new(self._key, token.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def user_of(self, token: str) -> str | None:
        presented = self._digest(token)
        found: str | None = None
        for user, digest in self._digests:  # no early exit: the same work whoever matches
            if hmac.compare_digest(presented, digest):
                found = user
        return found
