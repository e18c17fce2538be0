"""The retry schedule shared by the gateway's outboxes (webhooks, customer e-mails).

An outbox row is ``pending`` until it is delivered; a failed attempt schedules the next one
after ``first_backoff_s * 2**(attempts-1)`` seconds, capped at :data:`MAX_BACKOFF_S`; after
``max_attempts`` failures the row is ``dead`` and waits for a lead to replay it (which
gives it a fresh attempt budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

MAX_BACKOFF_S = 3600.0
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class DeliveryRound:
    """What one delivery round of an outbox did: rows claimed, rows delivered, of ``limit``."""

    claimed: int
    delivered: int
    limit: int

    @property
    def full(self) -> bool:
        """The round took as many rows as it may: more may be due now (a backlog)."""
        return self.claimed >= self.limit


class RetriedRow(Protocol):
    """What the schedule needs of an outbox row (a mapped model instance)."""

    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str


def backoff_s(first_backoff_s: float, attempts: int) -> float:
    """Seconds to wait after ``attempts`` failures: exponential from ``first_backoff_s``.

    ``backoff_s(2, 1) == 2``, ``backoff_s(2, 3) == 8``; never more than one hour.
    """
    return float(min(MAX_BACKOFF_S, first_backoff_s * 2 ** max(0, attempts - 1)))


def record_failure(
    row: RetriedRow,
    error: str,
    *,
    now: datetime,
    first_backoff_s: float,
    max_attempts: int,
    permanent: bool = False,
) -> bool:
    """Book a failed attempt (``row.attempts`` already counts it); return True when dead.

    The row becomes ``dead`` once ``max_attempts`` attempts failed, or at once when the
    failure is ``permanent`` (retrying cannot help); otherwise it stays ``pending``, due
    after :func:`backoff_s`. ``error`` is kept, cut to 2000 characters.
    """
    row.last_error = error[:MAX_ERROR_CHARS]
    if permanent or row.attempts >= max_attempts:
        row.status = "dead"
        return True
    row.status = "pending"
    row.next_attempt_at = now + timedelta(seconds=backoff_s(first_backoff_s, row.attempts))
    return False


class NotReplayable(ValueError):
    """Only a dead outbox row can be replayed (HTTP 409); unknown ids are 404 at the API."""


def replay(row: RetriedRow, *, what: str, now: datetime) -> None:
    """Put a dead row back in the queue, due ``now``, with a fresh attempt budget.

    The caller commits. ``what`` names the row in the error (``"delivery 3"``).

    Raises:
        NotReplayable: when it is not dead.
    """
    if row.status != "dead":
        raise NotReplayable(f"{what} is {row.status!r}, not dead")
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = now
