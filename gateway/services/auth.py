"""Access: API keys, users, browser sessions, and the revocation of each.

API keys carry scopes (SHA-256 at rest), users roles (Argon2 via pwdlib); browser
sessions are stored server-side.

API keys and session tokens are 32 random bytes: being high-entropy, a plain SHA-256 is a
sound at-rest hash for them and allows lookup by hash. Passwords are low entropy, so they
get Argon2id through ``pwdlib`` (slow on purpose: callers run :func:`principal_for_user`
off the event loop, see :mod:`gateway.security.access`).

A key found valid is remembered by the gateway process for :data:`KEY_CACHE_TTL_S`
seconds (:class:`KeyCache`, by its SHA-256), so a shop's burst of calls costs one database
look-up per key and TTL rather than one per request. Revoking a key through this
process's API forgets it at once (refused from the very next request); a revocation made
elsewhere (another replica, ``returns-gateway access revoke-key``) is seen within
:data:`KEY_CACHE_TTL_S`. Users (HTTP Basic) and browser sessions are not cached: their
revocation takes effect on the next request everywhere.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pwdlib import PasswordHash
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.models import ApiKey, User, WebSession, utcnow

#: Every scope; ``admin`` implies all of them.
SCOPES = ("read", "rmas:write", "orders:write", "catalogue:write", "lead", "admin")
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "lead": frozenset({"read", "lead"}),
    "admin": frozenset(SCOPES),
}
KEY_PREFIX = "rsk_"

_hasher = PasswordHash.recommended()


SESSION_MAX_AGE_S = 12 * 3600
"""A browser session ends this long after sign-in (absolute, not sliding)."""
Via = Literal["key", "user", "session", "anonymous"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``name`` (e.g. ``api-key:shop``, ``user:alice``) and scopes.

    ``via`` says how the caller proved it (API key, HTTP Basic user, browser session,
    nobody); a browser session also carries the ``csrf`` token its form posts must echo.
    ``sites``: the sites it may see and change (empty: every site).
    """

    name: str
    scopes: frozenset[str]
    via: Via = "key"
    csrf: str = ""
    sites: frozenset[str] = frozenset()

    def may_use(self, site: str) -> bool:
        """True when the principal may see and change what belongs to ``site``."""
        return not self.sites or site in self.sites

    def can(self, scope: str) -> bool:
        """True when the principal holds ``scope`` (or ``admin``)."""
        return scope in self.scopes or "admin" in self.scopes

    @property
    def can_act(self) -> bool:
        """True for leads and admins (the status page shows their action buttons)."""
        return self.can("lead")


ANONYMOUS = Principal("anonymous", frozenset({"read"}), via="anonymous")


class DuplicateName(Exception):
    """A key or user with this name exists (HTTP 409)."""


class InvalidScope(ValueError):
    """An unknown scope or role (HTTP 422)."""


def hash_key(plain: str) -> str:
    """SHA-256 hex of an API key."""
    return hashlib.sha256(plain.encode()).hexdigest()


def _store_key(
    session: Session, name: str, plain: str, scopes: list[str], sites: Sequence[str] = ()
) -> ApiKey:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidScope(f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    record = ApiKey(
        name=name,
        prefix=plain[:8],
        key_hash=hash_key(plain),
        scopes=" ".join(sorted(scopes)),
        sites=" ".join(sorted(set(sites))),
    )
    session.add(record)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"API key {name!r} already exists") from exc
    return record


def create_api_key(
    session: Session, name: str, scopes: list[str], sites: Sequence[str] = ()
) -> tuple[str, ApiKey]:
    """Create a key; return the plain key (shown once, never stored) and its record.

    ``sites``: the only sites the key may see and change (empty: every site; the caller
    checked they are the gateway's).

    Raises:
        InvalidScope: unknown scope. DuplicateName: the name is taken.
    """
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    return plain, _store_key(session, name, plain, scopes, sites)


def ensure_bootstrap_key(session: Session, plain: str) -> None:
    """Make sure an admin key with this plain value exists (named ``bootstrap``)."""
    if session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(plain))) is None:
        existing = session.scalar(select(ApiKey).where(ApiKey.name == "bootstrap"))
        if existing is not None:
            existing.key_hash = hash_key(plain)
            existing.prefix = plain[:8]
            existing.revoked = False
            session.commit()
            return
        _store_key(session, "bootstrap", plain, ["admin"])


def principal_for_key(
    session: Session, plain: str, cache: KeyCache | None = None
) -> Principal | None:
    """Return the principal of a valid, unrevoked key, else None.

    With ``cache``, a valid key's principal is remembered there (an invalid one never is).
    """
    digest = hash_key(plain)
    generation = cache.generation if cache is not None else 0
    record = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if record is None or record.revoked:
        return None
    principal = Principal(
        f"api-key:{record.name}",
        frozenset(record.scopes.split()),
        via="key",
        sites=frozenset(record.sites.split()),
    )
    if cache is not None:
        cache.put(digest, principal, generation)
    return principal


KEY_CACHE_TTL_S = 5.0
"""How long (seconds) a process trusts a key it found valid without asking the database:
the longest a revocation made by another process (replica, shell) takes to be seen."""


class KeyCache:
    """Valid API keys this process checked lately: SHA-256 hex -> principal, for a TTL.

    Only keys the database found valid and unrevoked are put (:func:`principal_for_key`);
    an unknown or revoked key always goes to the database (and to the failure throttle).
    Entries are looked up by the SHA-256 of the presented key, like the table's unique
    index, so nothing about a stored key leaks through timing. Thread-safe; a look-up
    that read the key before a :meth:`forget` puts nothing (its ``generation`` is old), so
    a revocation here is never undone by a request that raced it.

    Args:
        ttl_s: seconds an entry is trusted (:data:`KEY_CACHE_TTL_S`).
        clock: monotonic seconds (tests pass their own).
        max_entries: at most this many keys are kept (the oldest go first).
    """

    def __init__(
        self,
        ttl_s: float = KEY_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 1024,
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Principal, float]] = {}
        self.generation = 0
        """Bumped by every :meth:`forget` / :meth:`clear`."""

    def get(self, plain: str) -> Principal | None:
        """The principal of ``plain`` when it was found valid less than ``ttl_s`` ago."""
        digest = hash_key(plain)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if self._clock() >= entry[1]:
                del self._entries[digest]
                return None
            return entry[0]

    def put(self, digest: str, principal: Principal, generation: int) -> None:
        """Remember a key (by its SHA-256 hex) found valid by a read begun at ``generation``.

        Nothing is kept when a :meth:`forget` came since (the read may predate it).
        """
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
            self._entries[digest] = (principal, self._clock() + self.ttl_s)

    def forget(self, name: str) -> None:
        """Drop the key named ``name`` (principal ``api-key:<name>``): revoked here."""
        wanted = f"api-key:{name}"
        with self._lock:
            self.generation += 1
            for digest in [d for d, (p, _) in self._entries.items() if p.name == wanted]:
                del self._entries[digest]

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self.generation += 1
            self._entries.clear()


def create_user(
    session: Session, username: str, password: str, role: str, sites: Sequence[str] = ()
) -> User:
    """Create a user with an Argon2id password hash and commit.

    ``sites``: the only sites the user may see and change (empty: every site).

    Raises:
        InvalidScope: unknown role. DuplicateName: the username is taken.
    """
    if role not in ROLE_SCOPES:
        raise InvalidScope(f"unknown role {role!r}; one of {', '.join(ROLE_SCOPES)}")
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=role,
        sites=" ".join(sorted(set(sites))),
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"user {username!r} already exists") from exc
    return user


def principal_for_user(session: Session, username: str, password: str) -> Principal | None:
    """Return the principal of an active user whose password matches, else None."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        _hasher.verify(password, _DUMMY_HASH)  # same cost whether the user exists or not
        return None
    if not _hasher.verify(password, user.password_hash):
        return None
    return Principal(
        f"user:{user.username}",
        ROLE_SCOPES.get(user.role, frozenset()),
        via="user",
        sites=frozenset(user.sites.split()),
    )


def open_session(session: Session, username: str, *, now: datetime | None = None) -> str:
    """Start a browser session for ``username`` (already authenticated); commit.

    Returns the cookie value (shown to the browser only; the table holds its SHA-256).
    Expired sessions are purged on the way.
    """
    now = now or utcnow()
    session.query(WebSession).filter(WebSession.expires_at < now).delete()
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=hash_key(token),
            username=username,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + timedelta(seconds=SESSION_MAX_AGE_S),
        )
    )
    session.commit()
    return token


def principal_for_session(
    session: Session, token: str, *, now: datetime | None = None
) -> Principal | None:
    """The principal of a live browser session (not revoked nor expired, user active)."""
    now = now or utcnow()
    record = session.scalar(select(WebSession).where(WebSession.token_hash == hash_key(token)))
    if record is None or record.revoked_at is not None or record.expires_at <= now:
        return None
    user = session.scalar(select(User).where(User.username == record.username))
    if user is None or not user.active:
        return None
    scopes = ROLE_SCOPES.get(user.role, frozenset())
    return Principal(
        f"user:{user.username}",
        scopes,
        via="session",
        csrf=record.csrf,
        sites=frozenset(user.sites.split()),
    )


def close_session(session: Session, token: str) -> bool:
    """Revoke one browser session (sign-out); commit. False when it was not live."""
    record = session.scalar(select(WebSession).where(WebSession.token_hash == hash_key(token)))
    if record is None or record.revoked_at is not None:
        return False
    record.revoked_at = utcnow()
    session.commit()
    return True


class UnknownName(LookupError):
    """No key or user with this name (HTTP 404)."""


def revoke_api_key(session: Session, name: str, cache: KeyCache | None = None) -> ApiKey:
    """Revoke the API key ``name``; commit. Idempotent.

    It is refused at once by the process whose ``cache`` this is (forgotten after the
    commit), within :data:`KEY_CACHE_TTL_S` by other processes.

    Raises:
        UnknownName: no key has this name.
    """
    record = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if record is None:
        raise UnknownName(f"no API key named {name!r}")
    record.revoked = True
    session.commit()
    if cache is not None:
        cache.forget(name)
    return record


def revoke_user(session: Session, username: str) -> User:
    """Deactivate ``username`` and end every session of theirs at once; commit. Idempotent.

    Raises:
        UnknownName: no user has this name.
    """
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UnknownName(f"no user named {username!r}")
    user.active = False
    now = utcnow()
    live = select(WebSession).where(
        WebSession.username == username, WebSession.revoked_at.is_(None)
    )
    for record in session.scalars(live):
        record.revoked_at = now
    session.commit()
    return user


_DUMMY_HASH = _hasher.hash("not-a-password")
