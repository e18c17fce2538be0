"""Site-wide RMA revision counter."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, select, update
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


def next_revision(session: Session, site: str) -> int:
    """Increment the site's revision inside the caller's transaction and return it.

    The increment is a single ``UPDATE ... RETURNING``, so concurrent writers serialise on
    the row (SQLite: on the database write lock) and never share a number. The caller
    commits or rolls back; a rollback gives the number back.
    """
    table = _TABLE  # Core, not an ORM-enabled UPDATE: the same SQL, a fraction of the work
    stmt = (
        update(table)
        .where(table.c.site == site)
        .values(revision=table.c.revision + 1)
        .returning(table.c.revision)
    )
    revision = session.execute(stmt).scalar_one_or_none()
    if revision is None:
        session.add(SiteRevision(site=site, revision=1))
        session.flush()
        revision = 1
    return int(revision)


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
        session.add(SiteRevision(site=site, revision=count))
        session.flush()
        last = count
    return int(last) - count + 1
