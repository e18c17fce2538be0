"""Refund arithmetic (gateway.returns.refunds): exact cents for each rule, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.returns.refunds import (
    LineTerms,
    OrderTerms,
    RefundError,
    RefundPolicy,
    largest_remainder,
    minor_unit_exponent,
    paid_lines,
    refund_units,
    to_minor_units,
)

FULL = RefundPolicy(merchant_fault=True)


def test_largest_remainder_gives_the_missing_cents_to_the_largest_remainders() -> None:
    # quotas 333.33, 333.33, 333.33 -> the first (tie) gets the cent
    assert largest_remainder(1000, [1, 1, 1]) == [334, 333, 333]
    # quotas 12.5, 37.5 -> remainders tie at .5: the lower index wins
    assert largest_remainder(50, [1000, 3000]) == [13, 37]
    # quotas 6.6, 3.3, 0.1 -> 6 + 3 + 0 = 9, the cent goes to the largest remainder (.6)
    assert largest_remainder(10, [66, 33, 1]) == [7, 3, 0]
    assert largest_remainder(5, [0, 0]) == [3, 2]
    assert largest_remainder(0, []) == []


def test_order_discount_spread_over_lines_and_units() -> None:
    terms = OrderTerms(
        currency="EUR",
        lines=(LineTerms(1, 3, 1000), LineTerms(2, 1, 2000)),
        order_discount_cents=1001,
    )
    # bases 3000 and 2000: quotas 600.6 and 400.4 -> 601 and 400
    assert [(p.order_discount_cents, p.paid_cents) for p in paid_lines(terms)] == [
        (601, 2399),
        (400, 1600),
    ]
    # line 1's 2399 over 3 units: 800, 800, 799
    first = refund_units(terms, {1: 1}, FULL)
    assert (first.amount_cents, first.lines[0].discount_cents) == (800, 201)
    rest = refund_units(terms, {1: 2}, FULL, already={1: 1})
    assert [ln.paid_cents for ln in rest.lines] == [1599]
    assert first.amount_cents + rest.amount_cents == 2399


def test_line_discount_then_voucher() -> None:
    terms = OrderTerms(
        currency="EUR",
        lines=(LineTerms(1, 2, 2500, line_discount_cents=500), LineTerms(2, 1, 1500)),
        voucher_cents=700,
    )
    # bases 4500 and 1500: voucher 525 / 175
    assert [(p.voucher_cents, p.paid_cents) for p in paid_lines(terms)] == [
        (525, 3975),
        (175, 1325),
    ]
    refund = refund_units(terms, {1: 1, 2: 1}, FULL)
    assert [(ln.line_no, ln.paid_cents, ln.voucher_cents) for ln in refund.lines] == [
        (1, 1988, 263),
        (2, 1325, 175),
    ]


def test_tax_inclusive_is_refunded_in_proportion() -> None:
    terms = OrderTerms(currency="EUR", lines=(LineTerms(1, 1, 11990, tax_rate_bp=2000),))
    # 11990 / 1.2 = 9991.67 -> net 9992, tax 1998
    full = refund_units(terms, {1: 1}, FULL).lines[0]
    assert (full.net_cents, full.tax_cents, full.goods_refund_cents) == (9992, 1998, 11990)
    half = refund_units(terms, {1: 1}, RefundPolicy(credit_percent=50.0)).lines[0]
    # 50 % of 11990 = 5995, of which tax 5995 x 1998 / 11990 = 999
    assert (half.goods_refund_cents, half.tax_refund_cents) == (5995, 999)


def test_tax_exclusive_is_added_per_line() -> None:
    terms = OrderTerms(
        currency="USD",
        lines=(LineTerms(1, 3, 1999, tax_rate_bp=825), LineTerms(2, 1, 500)),
        tax_inclusive=False,
        order_discount_cents=100,
    )
    # bases 5997 / 500; discount 92 / 8; tax 8.25 % of 5905 = 487.16 -> 487, line 2 none
    assert [(p.net_cents, p.tax_cents, p.paid_cents) for p in paid_lines(terms)] == [
        (5905, 487, 6392),
        (492, 0, 492),
    ]
    # units of line 1: paid 2131, 2131, 2130; tax 163, 162, 162
    lines = [refund_units(terms, {1: 1}, FULL, already={1: j}).lines[0] for j in range(3)]
    assert [(ln.net_cents, ln.tax_cents) for ln in lines] == [
        (1968, 163),
        (1969, 162),
        (1968, 162),
    ]


def test_restocking_fee_and_grade_unless_merchant_fault() -> None:
    terms = OrderTerms(currency="EUR", lines=(LineTerms(1, 1, 12345, category="electronics"),))
    policy = RefundPolicy(credit_percent=80.0, fee_percent={"electronics": 15.0})
    line = refund_units(terms, {1: 1}, policy).lines[0]
    # 80 % = 9876, fee 15 % = 1851.75 -> 1852
    assert (line.goods_refund_cents, line.restocking_fee_cents) == (9876 - 1852, 1852)
    fault = RefundPolicy(merchant_fault=True, credit_percent=80.0, fee_percent=policy.fee_percent)
    line = refund_units(terms, {1: 1}, fault).lines[0]
    assert (line.goods_refund_cents, line.restocking_fee_cents) == (12345, 0)
    greedy = RefundPolicy(credit_percent=10.0, fee_percent={"default": 20.0})
    line = refund_units(terms, {1: 1}, greedy).lines[0]
    assert (line.goods_refund_cents, line.restocking_fee_cents) == (0, 1235)


def test_shipping_refunded_by_policy_only() -> None:
    terms = OrderTerms(
        currency="EUR",
        lines=(LineTerms(1, 2, 3000), LineTerms(2, 1, 1000)),
        shipping_paid_cents=499,
    )
    # paid 6000 / 1000: 427.71 / 71.29 -> 428 / 71; line 1 per unit 214, 214
    assert [p.shipping_cents for p in paid_lines(terms)] == [428, 71]
    kept = refund_units(terms, {1: 1}, RefundPolicy())
    assert (kept.amount_cents, kept.lines[0].shipping_refund_cents) == (3000, 0)
    back = refund_units(
        terms, {1: 2, 2: 1}, RefundPolicy(merchant_fault=True, refund_shipping=True)
    )
    assert back.amount_cents == 7000 + 499


def test_currency_exponent_from_cldr() -> None:
    assert (minor_unit_exponent("EUR"), minor_unit_exponent("JPY"), minor_unit_exponent("KWD")) == (
        2,
        0,
        3,
    )
    assert to_minor_units("19,90", "EUR") == 1990
    assert to_minor_units("1990", "JPY") == 1990
    assert to_minor_units("1.250", "KWD") == 1250
    for text, currency in (("1.5", "JPY"), ("NaN", "EUR"), ("inf", "EUR"), ("-1", "EUR")):
        with pytest.raises(RefundError):
            to_minor_units(text, currency)
    with pytest.raises(RefundError, match="ISO 4217"):
        minor_unit_exponent("ABC")


def test_bad_terms_and_requests_are_refused() -> None:
    line = LineTerms(1, 2, 1000)
    with pytest.raises(RefundError, match="exceed the lines"):
        paid_lines(OrderTerms("EUR", (line,), order_discount_cents=1500, voucher_cents=501))
    with pytest.raises(RefundError, match="line discount"):
        paid_lines(OrderTerms("EUR", (LineTerms(1, 1, 100, line_discount_cents=101),)))
    terms = OrderTerms("EUR", (line,))
    with pytest.raises(RefundError, match="1 left of 2"):
        refund_units(terms, {1: 2}, FULL, already={1: 1})
    with pytest.raises(RefundError, match="not on the order"):
        refund_units(terms, {7: 1}, FULL)


@st.composite
def orders_and_returns(draw: st.DrawFn) -> tuple[OrderTerms, list[dict[int, int]]]:
    """Any order with discounts, taxes and shipping, and its units split into refunds."""
    count = draw(st.integers(1, 5))
    lines = []
    for n in range(1, count + 1):
        qty = draw(st.integers(1, 6))
        price = draw(st.integers(0, 50_000))
        lines.append(
            LineTerms(
                n,
                qty,
                price,
                line_discount_cents=draw(st.integers(0, price * qty)),
                tax_rate_bp=draw(st.sampled_from([0, 550, 700, 825, 1900, 2000, 2500])),
            )
        )
    base = sum(ln.unit_price_cents * ln.quantity - ln.line_discount_cents for ln in lines)
    discount = draw(st.integers(0, base))
    terms = OrderTerms(
        currency=draw(st.sampled_from(["EUR", "JPY", "KWD"])),
        lines=tuple(lines),
        order_discount_cents=discount,
        voucher_cents=draw(st.integers(0, base - discount)),
        shipping_paid_cents=draw(st.integers(0, 2_000)),
        tax_inclusive=draw(st.booleans()),
    )
    refunds: list[dict[int, int]] = []
    left = {ln.line_no: ln.quantity for ln in lines}
    while any(left.values()):
        take = {n: draw(st.integers(0, q)) for n, q in left.items() if q}
        if not any(take.values()):
            take = {n: q for n, q in left.items() if q}
        refunds.append(take)
        left = {n: q - take.get(n, 0) for n, q in left.items()}
    return terms, refunds


@settings(max_examples=300, deadline=None)
@given(orders_and_returns(), st.booleans())
def test_refunds_are_exact_shares_and_a_full_return_gives_everything_back(
    case: tuple[OrderTerms, list[dict[int, int]]], shipping: bool
) -> None:
    terms, refunds = case
    policy = RefundPolicy(merchant_fault=True, refund_shipping=shipping)
    paid = {p.line_no: p for p in paid_lines(terms)}
    goods_paid = sum(p.paid_cents for p in paid.values())
    assert goods_paid == sum(
        ln.unit_price_cents * ln.quantity - ln.line_discount_cents for ln in terms.lines
    ) - terms.order_discount_cents - terms.voucher_cents + (
        0 if terms.tax_inclusive else sum(p.tax_cents for p in paid.values())
    )
    assert sum(p.shipping_cents for p in paid.values()) == terms.shipping_paid_cents
    already: dict[int, int] = {}
    refunded: dict[int, int] = {}
    total = tax_total = 0
    for units in refunds:
        refund = refund_units(terms, units, policy, already=already)
        for line in refund.lines:
            p = paid[line.line_no]
            # each refund is its exact share: the units refunded so far carry their
            # pro-rata of the line's paid amount, rounded up by less than one minor unit
            assert abs(line.paid_cents - p.paid_cents * line.quantity / p.quantity) < 1
            done = already.get(line.line_no, 0) + line.quantity
            so_far = refunded.get(line.line_no, 0) + line.paid_cents
            assert 0 <= so_far - p.paid_cents * done / p.quantity < 1
            assert 0 <= line.tax_cents <= line.paid_cents
            assert line.net_cents >= 0
            assert line.goods_refund_cents == line.paid_cents
            already[line.line_no], refunded[line.line_no] = done, so_far
        total += refund.amount_cents
        tax_total += sum(line.tax_cents for line in refund.lines)
        assert total <= goods_paid + terms.shipping_paid_cents
    assert total == goods_paid + (terms.shipping_paid_cents if shipping else 0)
    assert tax_total == sum(p.tax_cents for p in paid.values())


@settings(max_examples=100, deadline=None)
@given(orders_and_returns(), st.floats(0, 100), st.floats(0, 100))
def test_graded_refunds_never_exceed_what_was_paid(
    case: tuple[OrderTerms, list[dict[int, int]]], credit: float, fee: float
) -> None:
    terms, refunds = case
    policy = RefundPolicy(credit_percent=credit, fee_percent={"default": fee})
    already: dict[int, int] = {}
    for units in refunds:
        for line in refund_units(terms, units, policy, already=already).lines:
            assert 0 <= line.goods_refund_cents <= line.paid_cents
            assert 0 <= line.tax_refund_cents <= line.tax_cents
            assert line.shipping_refund_cents == 0
            already[line.line_no] = already.get(line.line_no, 0) + line.quantity
