"""Secret strength and one key per purpose, derived from ``RS_SECRET_KEY``.

No key is used for two purposes: the return form's links and CSRF tokens each get their own
key, derived with HKDF-SHA256 (RFC 5869, ``cryptography``'s implementation) from the
settings' secret with the purpose as ``info``. Knowing one derived key (or a webhook
endpoint's secret, which is random and stored apart) tells nothing about the others.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_LENGTH = 32
"""Shortest secret accepted outside dev (characters)."""
MIN_SECRET_BITS = 96.0
"""Least estimated entropy (bits) of a secret accepted outside dev; see :func:`estimated_bits`."""
PLACEHOLDERS = ("changeme", "replaceme", "secretkey", "example", "password")
"""Words that mark a copied placeholder rather than a generated secret."""

PURPOSES = frozenset({"returns-order-link", "returns-rma-link", "returns-csrf"})
"""Every purpose a key is derived for (a typo is an error, not a new key)."""
_INFO_PREFIX = b"returns-sorter/v1/"


def estimated_bits(secret: str) -> float:
    """Shannon estimate of a secret's entropy: length x bits per character.

    The per-character figure is the entropy of the secret's own character frequencies, so
    ``"x" * 64`` scores 0 and a ``secrets.token_urlsafe(32)`` value about 200. It cannot see
    dictionary words or keyboard walks; it catches repeated and tiny-alphabet values.
    """
    if not secret:
        return 0.0
    counts = Counter(secret)
    n = len(secret)
    per_char = max(0.0, -sum(c / n * math.log2(c / n) for c in counts.values()))
    return per_char * n


def weakness(secret: str, *, min_length: int = MIN_SECRET_LENGTH) -> str | None:
    """Why ``secret`` is too weak for production, or None when it is acceptable.

    Refused: shorter than ``min_length`` characters, an estimated entropy below
    :data:`MIN_SECRET_BITS` bits, or containing a placeholder word (``change-me``, ...).
    """
    if len(secret) < min_length:
        return f"too short ({len(secret)} characters; at least {min_length} are required)"
    folded = re.sub(r"[^a-z]", "", secret.lower())
    for word in PLACEHOLDERS:
        if word in folded:
            return f"a placeholder (contains {word!r})"
    bits = estimated_bits(secret)
    if bits < MIN_SECRET_BITS:
        return f"too predictable (about {bits:.0f} bits; at least {MIN_SECRET_BITS:.0f} needed)"
    return None


@lru_cache(maxsize=64)
def derive(secret: str, purpose: str) -> bytes:
    """The 32-byte key for ``purpose`` derived from ``secret`` (HKDF-SHA256, no salt).

    Raises:
        ValueError: when ``purpose`` is not one of :data:`PURPOSES`.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}; known: {sorted(PURPOSES)}")
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO_PREFIX + purpose.encode()
    )
    return hkdf.derive(secret.encode())


def derive_text(secret: str, purpose: str) -> str:
    """:func:`derive` as hex, for libraries that take a string key (itsdangerous, CSRF)."""
    return derive(secret, purpose).hex()
