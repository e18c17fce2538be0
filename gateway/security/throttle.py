"""Credential checks before any expensive work: failure budgets and a cap on hashing.

Every check of a password (HTTP Basic, the sign-in form) or an API key first asks
:meth:`CredentialThrottle.refusal`, which costs a counter look-up and no hashing: a client
address that used up its budget of failures, or a user name under attack, is answered 429
with ``Retry-After`` before Argon2 runs. Failures are counted with the ``limits`` library
(moving windows; storage ``RS_RATE_LIMIT_STORAGE``, e.g. ``redis://`` for several workers):

- per client address (``RS_AUTH_RATE_LIMIT_IP``, default 30 per minute), whatever the user;
- per user name (``RS_AUTH_RATE_LIMIT_USER``, default 10 per 5 minutes), except from the
  addresses where that user signed in successfully in the last 30 days. So a guesser
  spread over many addresses is slowed down per name, while the owner at their usual
  workstation is never locked out, and elsewhere waits at most one window after the
  attack stops.

Argon2 itself then runs in a worker thread under an ``anyio.CapacityLimiter`` of
``RS_AUTH_HASH_CONCURRENCY`` (default 2, one per core of a small box); with more than
``RS_AUTH_HASH_QUEUE`` checks waiting, new ones get 503 at once instead of queueing
without bound. The event loop never hashes, so ``/livez`` and the live page stay fast.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from gateway.settings import Settings

T = TypeVar("T")
KNOWN_ADDRESS_S = 30 * 86_400
"""How long a successful sign-in exempts its (user, address) pair from the per-user budget."""
KNOWN_ADDRESSES_MAX = 10_000
"""Bound of the remembered (user, address) pairs (oldest forgotten first)."""


class Busy(Exception):
    """Too many password checks are already waiting (HTTP 503)."""


class CredentialThrottle:
    """Failure budgets per address and per user, and the hashing gate, of one gateway."""

    def __init__(self, settings: Settings) -> None:
        self._per_ip: RateLimitItem = parse(settings.auth_rate_limit_ip)
        self._per_user: RateLimitItem = parse(settings.auth_rate_limit_user)
        self._limiter = MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
        self._concurrency = settings.auth_hash_concurrency
        self._queue = settings.auth_hash_queue
        self._gate: anyio.CapacityLimiter | None = None
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    # -- budgets ----------------------------------------------------------------------------

    def refusal(self, address: str, user: str | None = None) -> int | None:
        """Seconds to wait when this check must be refused now, else None (nothing counted).

        ``user`` is the user name tried (None for an API key: only the address budget).
        """
        waits = []
        if not self._limiter.test(self._per_ip, "auth-ip", address):
            waits.append(self._reset_in(self._per_ip, "auth-ip", address))
        name = (user or "").lower()
        user_guarded = bool(name) and not self._known_pair(name, address)
        if user_guarded and not self._limiter.test(self._per_user, "auth-user", name):
            waits.append(self._reset_in(self._per_user, "auth-user", name))
        return max(waits) if waits else None

    def failed(self, address: str, user: str | None = None) -> None:
        """Count one failed check against the address and (unless it is known) the user."""
        self._limiter.hit(self._per_ip, "auth-ip", address)
        name = (user or "").lower()
        if name and not self._known_pair(name, address):
            self._limiter.hit(self._per_user, "auth-user", name)

    def succeeded(self, address: str, user: str | None = None) -> None:
        """Remember that ``user`` proved itself from ``address`` (exempt from the user budget)."""
        if not user:
            return
        with self._lock:
            key = (user.lower(), address)
            self._known[key] = time.monotonic() + KNOWN_ADDRESS_S
            self._known.move_to_end(key)
            while len(self._known) > KNOWN_ADDRESSES_MAX:
                self._known.popitem(last=False)

    def _known_pair(self, user: str, address: str) -> bool:
        with self._lock:
            until = self._known.get((user, address))
        return until is not None and until > time.monotonic()

    def _reset_in(self, item: RateLimitItem, *ids: str) -> int:
        stats = self._limiter.get_window_stats(item, *ids)
        return max(1, math.ceil(stats.reset_time - time.time()))

    # -- hashing ----------------------------------------------------------------------------

    async def hash_off_loop(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` (a password check) in a worker thread under the hashing cap.

        Raises:
            Busy: when more than ``auth_hash_queue`` checks are already waiting.
        """
        if self._gate is None:  # created in the running loop, on first use
            self._gate = anyio.CapacityLimiter(self._concurrency)
        if self._gate.statistics().tasks_waiting >= self._queue:
            raise Busy("too many sign-in attempts in progress; try again in a moment")
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._gate)
