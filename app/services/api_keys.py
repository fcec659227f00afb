"""Platform API keys: which configured key, if any, a presented token is."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def matching_key_index(token: str, keys: Iterable[str]) -> int | None:
    """The position of the key equal to `token`, or None.

    Every key is compared, each in constant time, whatever matched before: how long the
    check takes tells an attacker nothing about which key, or how much of one, they guessed.
    """
    presented = token.encode()
    found: int | None = None
    for index, key in enumerate(keys):
        if hmac.compare_digest(presented, key.encode()) and found is None:
            found = index
    return None if not token else found


def key_label(token: str) -> str:
    """A stable, non-secret name for a key (rate-limit buckets, logs): never the key itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]
