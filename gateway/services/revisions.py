"""Site-wide RMA revision counter."""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import CTE, ScalarSelect, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.models import SiteRevision

_TABLE = cast(Table, SiteRevision.__table__)


def ensure_site(session: Session, site: str) -> None:
    """Create the site's revision counter (at 0) when missing, and commit."""
    if session.get(SiteRevision, site) is None:
        session.add(SiteRevision(site=site, revision=0))
        try:
            session.commit()
        except IntegrityError:  # created concurrently: fine
            session.rollback()


_NEXT = (
    update(_TABLE)
    .where(_TABLE.c.site == bindparam("rs_site"))
    .values(revision=_TABLE.c.revision + 1)
    .returning(_TABLE.c.revision)
)


def next_revision(session: Session, site: str) -> int:
    """Increment the site's revision inside the caller's transaction and return it.

    The increment is a single ``UPDATE ... RETURNING``, so concurrent writers serialise on
    the row (SQLite: on the database write lock) and never share a number. The caller
    commits or rolls back; a rollback gives the number back.
    """
    # Core, not an ORM-enabled UPDATE, built once: the same SQL, a fraction of the work
    revision = session.execute(_NEXT, {"rs_site": site}).scalar_one_or_none()
    if revision is None:
        if _create_counter(session, site, 1):
            return 1
        revision = session.execute(_NEXT, {"rs_site": site}).scalar_one()
    return int(revision)


def _create_counter(session: Session, site: str, value: int) -> bool:
    """Create the site's counter at ``value``; False if a concurrent writer created it first.

    A new site's first changes may race: each finds no row to update and inserts one. On
    PostgreSQL the insert runs in a savepoint, so the loser (whose insert waited for the
    winner's commit, then broke the primary key) undoes only the insert and can update
    the winner's row. SQLite has one writer at a time: the second waits for the first's
    commit before its UPDATE, which then finds the row.
    """
    if session.get_bind().dialect.name != "postgresql":
        session.add(SiteRevision(site=site, revision=value))
        session.flush()
        return True
    try:
        with session.begin_nested():
            session.execute(insert(_TABLE).values(site=site, revision=value))
    except IntegrityError:
        return False
    return True


def next_revision_and(
    session: Session, site: str, probe: ScalarSelect[Any], params: dict[str, Any]
) -> tuple[int, Any]:
    """:func:`next_revision`, and the value of ``probe`` read by the same statement.

    One ``UPDATE ... RETURNING revision, (probe)`` instead of the UPDATE and a SELECT
    after it: one round trip fewer. ``probe`` is a scalar subquery (e.g. the id of the
    RMA with a number, None when there is none) whose bound parameters are ``params``
    (their names must not be columns of ``site_revision``, nor ``rs_site``). Returns
    ``(revision, value)``.

    The value is read under the write lock the UPDATE takes, but on PostgreSQL from the
    statement's snapshot: a writer that held the lock while this one waited for it may
    have committed rows the probe does not see (a unique constraint must still catch
    them). SQLite (one writer at a time) sees everything committed.
    """
    row = session.execute(_update_returning(probe), {**params, "rs_site": site}).one_or_none()
    if row is None:  # the site's first change: its counter is created (at 1)
        return next_revision(session, site), session.scalar(select(probe), params)
    return int(row[0]), row[1]


@functools.lru_cache(maxsize=16)
def _update_returning(probe: ScalarSelect[Any]) -> Any:
    """``UPDATE site_revision ... RETURNING revision, (probe)`` for the site ``:rs_site``.

    Built once per probe (callers pass module-level ones): building and cache-keying the
    statement cost more than the database's work.
    """
    table = _TABLE
    return (
        update(table)
        .where(table.c.site == bindparam("rs_site"))
        .values(revision=table.c.revision + 1)
        .returning(table.c.revision, probe)
    )


@functools.lru_cache(maxsize=16)
def revision_cte(probe: ScalarSelect[Any]) -> CTE:
    """The site ``:rs_site``'s next revision as a ``WITH`` query, for a read that takes the lock.

    ``WITH rs_rev AS (UPDATE site_revision ... RETURNING revision AS rs_revision, (probe)
    AS rs_probe)``: one row (none when the site has no counter yet), for a SELECT that
    joins it to what it reads, so the read and :func:`next_revision_and` are one round
    trip. PostgreSQL only (SQLite has no data-modifying ``WITH``). A data-modifying
    ``WITH`` query runs exactly once whether or not the SELECT reads its rows, and with
    the SELECT's snapshot: what the SELECT reads is what was committed when the statement
    began, as for a read made before the lock (PostgreSQL manual, 7.8.4 "Data-Modifying
    Statements in WITH"). Built once per probe (callers pass module-level ones).
    """
    table = _TABLE
    return (
        update(table)
        .where(table.c.site == bindparam("rs_site"))
        .values(revision=table.c.revision + 1)
        .returning(table.c.revision.label("rs_revision"), probe.label("rs_probe"))
        .cte("rs_rev")
    )


def head_revision(session: Session, site: str) -> int:
    """Return the site's current revision (0 before the first RMA)."""
    value = session.scalar(select(SiteRevision.revision).where(SiteRevision.site == site))
    return int(value or 0)


def reserve_revisions(session: Session, site: str, count: int) -> int:
    """Take ``count`` consecutive revisions of the site at once; return the first of them.

    One ``UPDATE ... SET revision = revision + count RETURNING``: like :func:`next_revision`
    (concurrent writers serialise on the row until the caller's transaction ends, none
    shares a number, a rollback gives them back), for a batch that records many changes
    in one transaction and takes the row's lock only when it is about to write them.

    Raises:
        ValueError: ``count`` < 1.
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    stmt = (
        update(SiteRevision)
        .where(SiteRevision.site == site)
        .values(revision=SiteRevision.revision + count)
        .returning(SiteRevision.revision)
    )
    last = session.execute(stmt).scalar_one_or_none()
    if last is None:  # the first changes of a new site
        if _create_counter(session, site, count):
            return 1
        last = session.execute(stmt).scalar_one()
    return int(last) - count + 1
