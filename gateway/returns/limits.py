"""Rate limits of the public return form (the ``limits`` library, moving windows).

Order look-ups are counted per client IP and per order number, so guessing e-mail
addresses for one order, or order numbers from one address, is slowed down alike.
"""

from __future__ import annotations

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from gateway.settings import Settings


class FormLimiter:
    """Per-IP and per-order budgets of order look-ups, from the gateway's settings."""

    def __init__(self, settings: Settings) -> None:
        self._per_ip: RateLimitItem = parse(settings.form_rate_limit_ip)
        self._per_order: RateLimitItem = parse(settings.form_rate_limit_order)
        self._limiter = MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage))

    def allow(self, client_ip: str, order_ref: str) -> bool:
        """Count one attempt; False when the IP or the order has used up its budget.

        Both budgets are charged on every attempt, so an IP cannot spread its guesses
        over many orders, nor many IPs gang up on one order, beyond their limits.
        """
        ip_ok = self._limiter.hit(self._per_ip, "returns-ip", client_ip)
        order_ok = self._limiter.hit(self._per_order, "returns-order", order_ref.strip().upper())
        return ip_ok and order_ok
