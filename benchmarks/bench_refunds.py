"""Refund arithmetic: :func:`gateway.returns.refunds.refund_units` against the flat rule.

A 5-line order with an order discount, a voucher, exclusive tax and shipping; each call
refunds one unit of every line after one already refunded. The baseline is the flat rule
the gateway used before (``unit price x units`` and two percentages per line), measured in
the same run: what exact proration costs per refund.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from benchmarks import Figure
from gateway.returns.refunds import LineTerms, OrderTerms, RefundPolicy, percent_of, refund_units

N_REFUNDS = 5_000
TERMS = OrderTerms(
    currency="EUR",
    lines=tuple(
        LineTerms(n, 3, 1000 + 333 * n, line_discount_cents=50 * n, tax_rate_bp=2000)
        for n in range(1, 6)
    ),
    order_discount_cents=1234,
    voucher_cents=500,
    shipping_paid_cents=495,
    tax_inclusive=False,
)
POLICY = RefundPolicy(credit_percent=80.0, fee_percent={"default": 15.0}, refund_shipping=True)
UNITS = {n: 1 for n in range(1, 6)}
ALREADY = {n: 1 for n in range(1, 6)}


def _flat() -> int:
    total = 0
    for line in TERMS.lines:
        paid = line.unit_price_cents
        total += max(0, percent_of(paid, 80.0) - percent_of(paid, 15.0))
    return total


def _rate(call: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return n / (time.perf_counter() - t0)


def run() -> list[Figure]:
    """Refunds/s of the exact arithmetic beside the flat rule's, same run."""
    flat = _rate(_flat, N_REFUNDS)
    exact = _rate(lambda: refund_units(TERMS, UNITS, POLICY, already=ALREADY), N_REFUNDS)
    return [Figure("refunds computed (5 lines, exact proration)", exact, "1/s", "flat rule", flat)]
