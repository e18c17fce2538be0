"""Site-wide RMA revision counter."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.models import SiteRevision


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
    stmt = (
        update(SiteRevision)
        .where(SiteRevision.site == site)
        .values(revision=SiteRevision.revision + 1)
        .returning(SiteRevision.revision)
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


class RevisionCounter:
    """The site's next revisions for many changes of one transaction, written back once.

    A batch calls the counter once per change (``counter()`` returns the next revision);
    the first call locks the site's row (``UPDATE ... SET revision = revision
    RETURNING``, so concurrent writers serialise on it as with :func:`next_revision`),
    and :meth:`close` writes the last revision handed out, in the same transaction. No
    revision is skipped or shared; a rollback gives them all back.
    """

    def __init__(self, session: Session, site: str) -> None:
        self._session = session
        self._site = site
        self._head: int | None = None
        self._read: int | None = None

    def __call__(self) -> int:
        """Return the next revision of the site (locking its row on the first call)."""
        if self._head is None:
            stmt = (
                update(SiteRevision)
                .where(SiteRevision.site == self._site)
                .values(revision=SiteRevision.revision)
                .returning(SiteRevision.revision)
            )
            current = self._session.execute(stmt).scalar_one_or_none()
            if current is None:  # the first change of a new site
                self._session.add(SiteRevision(site=self._site, revision=0))
                self._session.flush()
                current = 0
            self._head = self._read = int(current)
        self._head += 1
        return self._head

    @property
    def used(self) -> int:
        """How many revisions were handed out."""
        return 0 if self._head is None or self._read is None else self._head - self._read

    def close(self) -> None:
        """Write the last revision handed out to the site's counter (no-op when none was)."""
        if self.used:
            self._session.execute(
                update(SiteRevision)
                .where(SiteRevision.site == self._site)
                .values(revision=self._head)
            )
