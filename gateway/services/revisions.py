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
