"""The cache of active return reasons (gateway.services.reasons): what invalidates it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, update

from gateway.db import Database
from gateway.models import ReturnReason
from gateway.services import reasons
from gateway.services.reasons import UnknownReason, require_reason, upsert_reason


@pytest.fixture
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on ``db``'s engine while the test runs."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine, "before_cursor_execute", record)


def test_active_reasons_are_read_once_within_the_ttl(db: Database, statements: list[str]) -> None:
    with db.session() as s:
        assert require_reason(s, "size") == "size"
    with db.session() as s:
        assert require_reason(s, "changed_mind") == "changed_mind"
    assert len([q for q in statements if "return_reasons" in q]) == 1


def test_the_cache_expires_after_the_ttl(
    db: Database, statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.session() as s:
        require_reason(s, "size")
    monkeypatch.setattr(reasons, "REASON_CACHE_TTL_S", 0.0)
    with db.session() as s:
        require_reason(s, "size")
    assert len([q for q in statements if "return_reasons" in q]) == 2


def test_a_reason_deactivated_through_the_orm_is_refused_at_once(db: Database) -> None:
    with db.session() as s:
        require_reason(s, "size")  # cached: size active
        upsert_reason(s, "size", "Size", merchant_fault=False, active=False)
        s.commit()
    with db.session() as s, pytest.raises(UnknownReason) as err:
        require_reason(s, "size")
    assert "'size'" in str(err.value) and "size," not in str(err.value)
    assert str(err.value).endswith(
        "one of: changed_mind, damaged, damaged_in_transit, defective, not_as_described, "
        "other, wrong_item"
    )


def test_a_read_between_flush_and_commit_does_not_keep_the_old_list(db: Database) -> None:
    with db.session() as writer, db.session() as reader:
        upsert_reason(writer, "size", "Size", merchant_fault=False, active=False)
        writer.flush()
        assert require_reason(reader, "size") == "size"  # not committed yet: still active
        writer.commit()
    with db.session() as s, pytest.raises(UnknownReason):
        require_reason(s, "size")


def test_a_reason_added_elsewhere_is_accepted_at_once(db: Database) -> None:
    with db.session() as s:
        require_reason(s, "size")  # cached without "late"
    with db.engine.begin() as conn:  # another replica: no ORM event here
        conn.execute(
            ReturnReason.__table__.insert().values(
                code="late", label="Late", merchant_fault=True, active=True
            )
        )
    with db.session() as s:
        assert require_reason(s, "late") == "late"


def test_a_reason_deactivated_elsewhere_is_refused_after_the_ttl(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.session() as s:
        require_reason(s, "size")
    with db.engine.begin() as conn:  # another replica
        conn.execute(update(ReturnReason).where(ReturnReason.code == "size").values(active=False))
    with db.session() as s:
        assert require_reason(s, "size") == "size"  # within the TTL: the documented lag
    monkeypatch.setattr(reasons, "REASON_CACHE_TTL_S", 0.0)
    with db.session() as s, pytest.raises(UnknownReason):
        require_reason(s, "size")
