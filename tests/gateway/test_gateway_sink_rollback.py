"""A creation whose commit fails after the row sink wrote its RMA leaves nothing behind.

The sink makes the RMA, its lines and transitions persistent without a flush, so they are
not among the transaction's new objects that a rollback expunges; the sink takes them out
itself. Without that they stayed in the identity map with ids the database never kept,
and on SQLite (which gives those ids out again) the next creation in the same session
collided with them (regression found by attacking the creation path).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import inspect, select

from gateway.db import Database
from gateway.models import ApiKey, Rma, RmaLineRecord
from gateway.schemas import RmaDraft
from gateway.services.rmas import CreationConflict, create_rma
from gateway.settings import Settings

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def _draft(number: str) -> RmaDraft:
    return RmaDraft.model_validate(
        {
            "number": number,
            "order_ref": "O-1",
            "reason": "changed_mind",
            "resolution": "refund",
            "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999}],
        }
    )


def _breaks_the_commit(session: Any, kept: list[Rma]) -> Any:
    """A before_commit whose object breaks a NOT NULL constraint at the commit's flush."""

    def hook(rma: Rma) -> None:
        kept.append(rma)  # a caller that keeps the RMA it was about to commit
        session.add(ApiKey(name=None))

    return hook


def test_a_failed_commit_leaves_no_rma_of_it_in_the_session(anydb: Database) -> None:
    settings = Settings(site="s1")
    kept: list[Rma] = []
    with anydb.session() as s:
        first = create_rma(s, settings, _draft("G-0"), now=NOW)  # held: in the identity map
        with pytest.raises(CreationConflict):  # (a constraint not the number's: 409)
            create_rma(
                s, settings, _draft("G-1"), now=NOW, before_commit=_breaks_the_commit(s, kept)
            )
        held = sorted(
            (type(o).__name__, inspect(o).key[1][0])
            for o in s.identity_map.values()
            if isinstance(o, Rma | RmaLineRecord)
        )
        # G-0 only (expired by the rollback; its line, then held by nothing, is gone)
        assert held == [("Rma", 1)]
        assert first in s
        assert [(k.number, k in s) for k in kept] == [("G-1", False)]
        again = create_rma(s, settings, _draft("G-2"), now=NOW)  # ids 2 again on SQLite
        assert (again.number, again.revision) == ("G-2", 2)
    with anydb.session() as s:
        assert sorted(s.scalars(select(Rma.number))) == ["G-0", "G-2"]
        assert [
            ln.rma_id for ln in s.scalars(select(RmaLineRecord).order_by(RmaLineRecord.id))
        ] == [s.scalars(select(Rma.id).where(Rma.number == n)).one() for n in ("G-0", "G-2")]
