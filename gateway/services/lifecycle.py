"""The RMA lifecycle as an explicit state machine (the ``transitions`` library).

States::

    requested ──authorize──▶ authorized ──ship──▶ in_transit
        │                        │                   │
        reject                   receive_part / receive (also from in_transit and
        ▼                        │                   partially_received)
    rejected                     ▼
                       partially_received ──receive──▶ received ──grade──▶ graded
                                                                             │
                                          refund / credit / exchange ◀───────┘
                                          ▼
                              refunded | credited | exchanged ──close──▶ closed

    cancel: requested, authorized, in_transit ──▶ cancelled
    expire: requested, authorized, in_transit ──▶ expired
    close:  rejected, cancelled, expired and graded (credit refused) also close

Every fired trigger appends an :class:`gateway.models.RmaTransition` (trigger, from, to,
actor, note, UTC time), marked :data:`FIRED` until the writer path has recorded it
(:func:`fired_since_recorded`). A trigger not allowed from the current state raises
:class:`IllegalTransition` (HTTP 409 at the API).
"""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import inspect as sa_inspect
from transitions import MachineError
from transitions.extensions import LockedMachine

from gateway.models import Rma, RmaTransition, utcnow
from gateway.services.row_sink import sink_of

STATES = (
    "requested",
    "authorized",
    "in_transit",
    "partially_received",
    "received",
    "graded",
    "refunded",
    "credited",
    "exchanged",
    "closed",
    "rejected",
    "cancelled",
    "expired",
)

RESOLVED_STATES = frozenset({"refunded", "credited", "exchanged"})
#: States in which the RMA still expects goods (its quantities count as "on open RMAs").
OPEN_STATES = frozenset({"requested", "authorized", "in_transit", "partially_received"})
#: States that never took (or will take) goods back.
VOID_STATES = frozenset({"rejected", "cancelled", "expired"})
_RECEIVABLE = ["authorized", "in_transit", "partially_received"]

TRANSITIONS: list[dict[str, object]] = [
    {"trigger": "authorize", "source": "requested", "dest": "authorized"},
    {"trigger": "reject", "source": "requested", "dest": "rejected"},
    {"trigger": "ship", "source": "authorized", "dest": "in_transit"},
    {"trigger": "receive_part", "source": _RECEIVABLE, "dest": "partially_received"},
    {"trigger": "receive", "source": _RECEIVABLE, "dest": "received"},
    {"trigger": "grade", "source": "received", "dest": "graded"},
    {"trigger": "refund", "source": "graded", "dest": "refunded"},
    {"trigger": "credit", "source": "graded", "dest": "credited"},
    {"trigger": "exchange", "source": "graded", "dest": "exchanged"},
    {"trigger": "cancel", "source": ["requested", "authorized", "in_transit"], "dest": "cancelled"},
    {"trigger": "expire", "source": ["requested", "authorized", "in_transit"], "dest": "expired"},
    {
        "trigger": "close",
        "source": [
            "graded",
            "refunded",
            "credited",
            "exchanged",
            "rejected",
            "cancelled",
            "expired",
        ],
        "dest": "closed",
    },
]

TRIGGERS = tuple(sorted({str(t["trigger"]) for t in TRANSITIONS}))

#: The resolved state reached for each requested resolution.
RESOLUTION_TRIGGER = {"refund": "refund", "store_credit": "credit", "exchange": "exchange"}


#: key of :attr:`sqlalchemy.orm.InstanceState.info` marking a transition fired in this
#: process that :func:`gateway.services.rma_writer.apply_change` has not recorded yet
FIRED = "rs_fired"


#: key of the RMA's :attr:`sqlalchemy.orm.InstanceState.info`: the states reached by the
#: transitions :func:`fire` handed to a batch's row sink and not recorded yet
FIRED_ROWS = "rs_fired_rows"


def fired_since_recorded(rma: Rma) -> list[str]:
    """The states reached by the transitions :func:`fire` made since the last call, in order.

    Unmarks them. A transition loaded from the database was recorded before (never
    returned), so a change never re-announces what an earlier one did. Transitions a
    batch's row sink holds (:mod:`gateway.services.row_sink`) come after the ORM ones (a
    batch fires only into its sink).
    """
    state = sa_inspect(rma)
    # transitions never loaded nor appended to (a batch's RMAs): none fired into them
    fired = rma.transitions if "transitions" in state.dict else []
    states = [t.to_state for t in fired if sa_inspect(t).info.pop(FIRED, False)]
    sunk: list[str] = state.info.pop(FIRED_ROWS, [])
    return states + sunk


class IllegalTransition(Exception):
    """The trigger is not allowed from the RMA's current state (HTTP 409)."""

    def __init__(self, number: str, trigger: str, state: str) -> None:
        allowed = ", ".join(allowed_triggers(state)) or "none"
        super().__init__(
            f"RMA {number!r} is {state!r}: {trigger!r} is not allowed (allowed: {allowed})"
        )
        self.number = number
        self.trigger = trigger
        self.state = state


class _Subject:
    """The model object the state machine drives (``state`` attribute)."""

    state: str

    def __init__(self, state: str) -> None:
        self.state = state


_MACHINE = LockedMachine(
    model=None,
    states=list(STATES),
    transitions=TRANSITIONS,
    initial="requested",
    auto_transitions=False,
    send_event=False,
)


def allowed_triggers(state: str) -> list[str]:
    """Return the triggers allowed from ``state``, sorted."""
    return sorted(_MACHINE.get_triggers(state)) if state in STATES else []


@functools.cache
def next_state(state: str, trigger: str) -> str:
    """Return the state reached by firing ``trigger`` from ``state`` (pure; nothing stored).

    The machine has no conditions nor callbacks, so the answer depends on the two
    arguments only and is remembered (driving the locked machine costs about a
    millisecond a call; a refused trigger is asked of the machine each time).

    Raises:
        MachineError: when ``trigger`` is not allowed from ``state``.
        AttributeError: when ``trigger`` is not a trigger at all.
    """
    subject = _Subject(state)
    _MACHINE.add_model(subject, initial=state)
    try:
        getattr(subject, trigger)()
    finally:
        _MACHINE.remove_model(subject)
    return subject.state


def fire(rma: Rma, trigger: str, *, actor: str, note: str = "", at: datetime | None = None) -> None:
    """Move ``rma`` by ``trigger`` and record the transition (the caller commits).

    The transition is appended to ``rma.transitions``; for a stored RMA of a session
    whose batch holds a row sink open (:mod:`gateway.services.row_sink`), it is handed to
    that sink instead (the same row, written with the batch's other appended rows).

    Args:
        rma: the stored RMA (its ``state`` and ``updated_at`` change).
        trigger: one of :data:`TRIGGERS`.
        actor: who or what caused it, e.g. ``"api-key:shop"``, ``"station:st1"``,
            ``"user:alice"``, ``"system:expiry"``.
        note: free text kept with the transition.
        at: when (UTC); default now.

    Raises:
        IllegalTransition: when ``trigger`` is not allowed from the current state.
    """
    if trigger not in TRIGGERS:
        raise IllegalTransition(rma.number, trigger, rma.state)
    try:
        dest = next_state(rma.state, trigger)
    except MachineError as exc:
        raise IllegalTransition(rma.number, trigger, rma.state) from exc
    when = at or utcnow()
    state = sa_inspect(rma)
    session = state.session
    sink = sink_of(session) if session is not None and rma.id is not None else None
    if sink is None:
        record = RmaTransition(
            trigger=trigger, from_state=rma.state, to_state=dest, actor=actor, note=note, at=when
        )
        sa_inspect(record).info[FIRED] = True
        rma.transitions.append(record)
    else:
        sink.add(
            RmaTransition,
            {
                "rma_id": rma.id,
                "trigger": trigger,
                "from_state": rma.state,
                "to_state": dest,
                "actor": actor,
                "note": note,
                "at": when,
            },
        )
        state.info.setdefault(FIRED_ROWS, []).append(dest)
    rma.state = dest
    rma.updated_at = when
