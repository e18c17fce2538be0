"""RMA numbers with a check character: ISO/IEC 7064 MOD 37,36 (via ``python-stdnum``).

Generated numbers look like ``RS7K2M9Q4XI``: the prefix ``RS``, eight random characters of
``0-9A-Z`` and one check character computed over the whole string by the hybrid system
MOD 37,36 of ISO/IEC 7064: it catches every single-character substitution and about
99.9 % of transpositions of adjacent characters (a hybrid system misses a few; the pure
MOD 37-2 would catch them all but needs ``*`` as a 37th character). Any number of that
shape (``RS`` + 9 of ``0-9A-Z``) must carry a valid check character, whether generated
here or supplied by a shop, so a mistyped number is refused instead of looked up. Numbers
of other shapes (a shop's own numbering) are accepted as they are. The shape and check
rule live in ``protocol.codes`` (the station's code classifier applies the same rule: a
label read with a wrong check character is a garbled read, not an unknown RMA).
"""

from __future__ import annotations

import secrets
import string

from protocol.codes import (
    RMA_BODY_LENGTH,
    RMA_PREFIX,
    is_rma_number_shape,
    rma_check_character,
    rma_number_ok,
)

PREFIX = RMA_PREFIX
BODY_LENGTH = RMA_BODY_LENGTH
_ALPHABET = string.digits + string.ascii_uppercase


class MistypedNumber(ValueError):
    """A number in the gateway's format whose check character does not match (HTTP 422)."""


def generate() -> str:
    """Return a fresh random RMA number with its check character (e.g. ``RS7K2M9Q4XI``)."""
    body = PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(BODY_LENGTH))
    return body + rma_check_character(body)


def is_ours(number: str) -> bool:
    """True when ``number`` has the gateway's shape (so it must carry a valid check)."""
    return is_rma_number_shape(number)


def check(number: str) -> str:
    """Return ``number`` unchanged when acceptable.

    Raises:
        MistypedNumber: when it has the gateway's shape but a wrong check character.
    """
    if is_ours(number) and not rma_number_ok(number):
        raise MistypedNumber(
            f"RMA number {number!r} fails its check character (ISO 7064 MOD 37,36): "
            "probably mistyped"
        )
    return number
