"""Where a parsed JSON document holds NUL characters (U+0000), for the boundaries that refuse it.

PostgreSQL cannot store NUL in text, and no code, name or note of ours holds one: a message
or request carrying it is refused where it enters (the MQTT messages by
:func:`protocol.messages.decode`, the HTTP API by the gateway's NUL middleware), not when a
database write fails. JSON carries NUL only as the escape ``\\u0000`` (a raw 0x00 byte in a
string is invalid JSON), so a payload without that escape needs no walk: :func:`may_hold_nul`.
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
NUL_ESCAPE = b"\\u0000"
MAX_PLACES = 20
"""At most this many places are named (a document may hold thousands)."""

Loc = list[str | int]


def may_hold_nul(payload: bytes | str) -> bool:
    """Whether ``payload`` (JSON text) may carry a NUL: it holds the escape or a 0x00.

    False is certain (nothing to walk); True needs :func:`nul_places` on the parsed
    document (an escaped backslash followed by ``u0000`` is text, not a NUL).
    """
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    return NUL_ESCAPE in raw or b"\x00" in raw


def nul_places(value: Any, root: Loc) -> list[Loc]:
    """Where strings (object keys included) in a parsed JSON ``value`` hold NUL.

    Each place is ``root`` plus the keys and list indexes down to the string (a key that
    holds NUL names its own place). Iterative (no recursion limit on deep documents), at
    most :data:`MAX_PLACES` places, in document order.
    """
    found: list[Loc] = []
    stack: list[tuple[Loc, Any, bool]] = [(root, value, False)]  # (where, what, bad key)
    while stack and len(found) < MAX_PLACES:
        loc, item, bad_key = stack.pop()
        if bad_key:
            found.append(loc)
        if isinstance(item, str):
            if NUL in item:
                found.append(loc)
        elif isinstance(item, dict):
            keyed = [([*loc, k], child, NUL in k) for k, child in item.items()]
            stack.extend(reversed(keyed))
        elif isinstance(item, list):
            stack.extend(([*loc, i], child, False) for i, child in reversed(list(enumerate(item))))
    return found[:MAX_PLACES]
