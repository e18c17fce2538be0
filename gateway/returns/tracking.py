"""Carrier tracking numbers on RMAs: validated by the code classifier (pure).

A tracking number is accepted when :func:`protocol.codes.classify` (the classifier the
stations use, so a number the gateway stores is one a station's scanner recognises)
names it ``tracking``: UPU S10 (``RB123456785GB``, UPU standard S10-12) or UPS ``1Z``
(check digit over letters mapped to digits), a mistyped check digit refused with its
reason. The carrier's name defaults to the classifier's (``UPU S10``, ``UPS``); a shop
may name the postal operator of an S10 number instead (``La Poste``).
"""

from __future__ import annotations

from protocol.codes import classify
from protocol.messages import CodeClass

#: longest tracking number stored and announced (UPS 1Z: 18, S10: 13)
TRACKING_NUMBER_MAX_CHARS = 48
#: longest carrier name stored and announced
CARRIER_MAX_CHARS = 32


def check_tracking(tracking_number: str, carrier: str | None = None) -> tuple[str, str]:
    """Validate ``tracking_number``; return ``(carrier, number)`` as stored.

    The number is stripped and upper-cased (both formats are upper-case; a hand-typed
    ``1z...`` is the same parcel). ``carrier``: the shop's name for the carrier
    (stripped, at most :data:`CARRIER_MAX_CHARS`), default the classifier's.

    Raises:
        ValueError: the number is empty or too long, is not a tracking number the
            classifier knows, fails its check digit, or the carrier name is too long.
    """
    number = tracking_number.strip().upper()
    if not 1 <= len(number) <= TRACKING_NUMBER_MAX_CHARS:
        raise ValueError(f"a tracking number has 1..{TRACKING_NUMBER_MAX_CHARS} characters")
    read = classify(number)
    if read.code_class is CodeClass.GARBLED:
        raise ValueError(f"tracking number {number!r}: {read.detail}")
    if read.code_class is not CodeClass.TRACKING or read.carrier is None:
        raise ValueError(
            f"{number!r} is not a carrier tracking number the stations recognise "
            "(UPU S10 such as RB123456785GB, UPS 1Z...)"
        )
    name = " ".join((carrier or "").split()) or read.carrier
    if len(name) > CARRIER_MAX_CHARS:
        raise ValueError(f"a carrier name has at most {CARRIER_MAX_CHARS} characters")
    return name, number
