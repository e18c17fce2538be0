"""Access: API keys with scopes (SHA-256 at rest), users with roles (Argon2 via pwdlib).

API keys are 32 random bytes (``rsk_`` + URL-safe base64): being high-entropy, a plain
SHA-256 is a sound at-rest hash for them and allows lookup by hash. Passwords are low
entropy, so they get Argon2id through ``pwdlib``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from pwdlib import PasswordHash
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.models import ApiKey, User

#: Every scope; ``admin`` implies all of them.
SCOPES = ("read", "rmas:write", "orders:write", "lead", "admin")
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "lead": frozenset({"read", "lead"}),
    "admin": frozenset(SCOPES),
}
KEY_PREFIX = "rsk_"

_hasher = PasswordHash.recommended()


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``name`` (e.g. ``api-key:shop``, ``user:alice``) and scopes."""

    name: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        """True when the principal holds ``scope`` (or ``admin``)."""
        return scope in self.scopes or "admin" in self.scopes


class DuplicateName(Exception):
    """A key or user with this name exists (HTTP 409)."""


class InvalidScope(ValueError):
    """An unknown scope or role (HTTP 422)."""


def hash_key(plain: str) -> str:
    """SHA-256 hex of an API key."""
    return hashlib.sha256(plain.encode()).hexdigest()


def _store_key(session: Session, name: str, plain: str, scopes: list[str]) -> ApiKey:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidScope(f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    record = ApiKey(
        name=name, prefix=plain[:8], key_hash=hash_key(plain), scopes=" ".join(sorted(scopes))
    )
    session.add(record)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"API key {name!r} already exists") from exc
    return record


def create_api_key(session: Session, name: str, scopes: list[str]) -> tuple[str, ApiKey]:
    """Create a key; return the plain key (shown once, never stored) and its record.

    Raises:
        InvalidScope: unknown scope. DuplicateName: the name is taken.
    """
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    return plain, _store_key(session, name, plain, scopes)


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


def principal_for_key(session: Session, plain: str) -> Principal | None:
    """Return the principal of a valid, unrevoked key, else None."""
    record = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plain)))
    if record is None or record.revoked:
        return None
    return Principal(f"api-key:{record.name}", frozenset(record.scopes.split()))


def create_user(session: Session, username: str, password: str, role: str) -> User:
    """Create a user with an Argon2id password hash and commit.

    Raises:
        InvalidScope: unknown role. DuplicateName: the username is taken.
    """
    if role not in ROLE_SCOPES:
        raise InvalidScope(f"unknown role {role!r}; one of {', '.join(ROLE_SCOPES)}")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
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
    return Principal(f"user:{user.username}", ROLE_SCOPES.get(user.role, frozenset()))


_DUMMY_HASH = _hasher.hash("not-a-password")
