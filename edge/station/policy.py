"""The disposition policy at the station: validated from the gateway's push, cached, reloaded.

The gateway pushes a :class:`protocol.policy.DispositionPolicy` (``rs/v1/{site}/policy``);
the station validates it (wire model, then the core's fail-safe rules), keeps the text in
its store so a restart sorts by the same table, and the reactor switches the core to it
before its next input (``edge.station.inputs.ApplyPolicy``).
"""

from __future__ import annotations

import logging

from edge.sorter.policy import Policy, policy_from_mapping
from edge.store import StationStore
from protocol import ProtocolError, decode
from protocol.policy import DispositionPolicy

__all__ = ["cached_policy", "parse_policy"]

log = logging.getLogger(__name__)


def parse_policy(payload: bytes | str) -> tuple[Policy, str]:
    """The policy of a pushed payload, and its text for the cache.

    Raises:
        ProtocolError: when the payload is not a valid ``DispositionPolicy``.
        ValueError: when the table breaks a fail-safe rule (see ``edge.sorter.policy``).
    """
    message = decode(payload, DispositionPolicy)
    policy = policy_from_mapping(message.model_dump())
    return policy, payload.decode("utf-8") if isinstance(payload, bytes) else payload


def cached_policy(store: StationStore) -> Policy | None:
    """The policy last pushed by the gateway, from the store; None: the default applies.

    A cached policy that no longer validates is logged and ignored (the default applies).
    """
    payload = store.load_policy()
    if payload is None:
        return None
    try:
        return parse_policy(payload)[0]
    except (ProtocolError, ValueError):
        log.exception("cached disposition policy is invalid; using the default")
        return None
