"""Refund arithmetic in integer minor units (pure: no database, no clock).

One entry point, :func:`refund_units`, answers "what is refunded for these units of these
order lines", given the order's terms (:class:`OrderTerms`), the units of each line
already refunded before, and the policy of this refund (:class:`RefundPolicy`).

Rules (every amount an ``int`` in minor units of the order's currency, e.g. cents):

1. **Line base** = ``unit_price_cents x quantity - line_discount_cents`` (the line-level
   discount is an amount off the whole line; it may not exceed the line's gross).
2. **Order-level discount, then voucher**, are spread over the lines in proportion to
   what is left of each line, by the *largest-remainder* method (Hamilton): each line
   gets the floor of its exact quota, and the cents still missing go one each to the
   lines with the largest fractional remainders (ties: lower line number first). The
   parts therefore sum exactly to the discount, and no line's part exceeds what the line
   had left. Both are amounts on the same footing as the prices (tax included when the
   order's prices include tax, before tax otherwise).
3. **Tax per line** at ``tax_rate_bp`` basis points (2000 = 20 %). Prices tax-inclusive:
   the line's goods amount is what was paid and its tax part is
   ``goods - round_half_up(goods x 10000 / (10000 + rate))``. Tax-exclusive: the tax is
   ``round_half_up(goods x rate / 10000)`` on top. Either way ``paid = net + tax`` per line.
4. **Per unit**: a line's paid amount, discount, voucher and shipping parts are each
   spread over its units (all units weigh the same: the first ``n`` of ``q`` units carry
   ``ceil(amount x n / q)``, so each unit has the floor or ceiling of its quota and any
   first units are less than one minor unit above their pro-rata). The tax follows the
   paid amount: units that carry ``p`` of the line's ``paid`` carry ``ceil(tax x p /
   paid)`` of its tax, and their net is the rest, so neither is ever negative. The
   refund of ``k`` units after ``j`` already refunded is ``cum(j + k) - cum(j)``: partial
   returns telescope, so returning every unit, in any number of refunds, gives back
   exactly the line's paid amount and tax.
5. **Credit by grade and restocking fee**: unless the reason is the merchant's fault, the
   goods refund is ``credit_percent`` % of the units' paid amount minus the category's
   ``restocking_fee_percent`` % of it (both rounded half up, never below 0); for a merchant
   fault it is the paid amount. The tax refunded is the goods refund's share of the units'
   tax (refunded in proportion), rounded half up.
6. **Shipping** paid by the customer is spread over lines by largest remainder in
   proportion to their paid amounts (by units when nothing was paid), then over units as
   in rule 4; a unit's share is refunded when the policy says so (by default only for
   merchant-fault reasons, see ``Settings.shipping_refund``).
7. **Currency** is the order's (ISO 4217). Its minor-unit exponent (2 for EUR, 0 for JPY,
   3 for KWD) comes from the CLDR data of ``babel``; :func:`to_minor_units` turns a decimal
   amount of a currency into minor units and refuses more decimals than it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import get_currency_precision, list_currencies

#: Bounds of the terms (a hostile order cannot make the arithmetic blow up).
MAX_AMOUNT_CENTS = 10**12
MAX_QUANTITY = 10_000
MAX_TAX_RATE_BP = 10_000
_BP = 10_000


class RefundError(ValueError):
    """Terms or requested units that cannot be refunded (the message says which line)."""


# -- currency ---------------------------------------------------------------------------


def is_currency(code: str) -> bool:
    """True for an ISO 4217 alphabetic code that CLDR (``babel``) knows, e.g. ``EUR``."""
    return code in _CURRENCIES


def minor_unit_exponent(code: str) -> int:
    """Decimal places of the currency's minor unit: EUR 2, JPY 0, KWD 3 (CLDR data).

    Raises:
        RefundError: for a code that is not an ISO 4217 currency.
    """
    if not is_currency(code):
        raise RefundError(f"{code!r} is not an ISO 4217 currency code")
    return int(get_currency_precision(code))


def to_minor_units(text: str, currency: str) -> int:
    """Parse a decimal amount of ``currency`` (``"19.90"``, ``"19,90"``) to minor units.

    Raises:
        RefundError: not a finite decimal number, negative, more decimals than the
            currency has (``"1.5"`` JPY), or above :data:`MAX_AMOUNT_CENTS`.
    """
    exponent = minor_unit_exponent(currency)
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation as exc:
        raise RefundError(f"{text!r} is not an amount") from exc
    if not value.is_finite():
        raise RefundError(f"{text!r} is not a finite amount")
    if value < 0:
        raise RefundError(f"{text!r} is negative")
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise RefundError(f"{text!r} has more than {exponent} decimal(s) for {currency}")
    if minor > MAX_AMOUNT_CENTS:
        raise RefundError(f"{text!r} is above the limit of {MAX_AMOUNT_CENTS} minor units")
    return int(minor)


# -- the arithmetic's building blocks ---------------------------------------------------


def percent_of(amount_cents: int, percent: float) -> int:
    """Return ``percent`` % of ``amount_cents``, rounded half up to a whole minor unit."""
    value = Decimal(amount_cents) * Decimal(str(percent)) / Decimal(100)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _div_half_up(numerator: int, denominator: int) -> int:
    """``round_half_up(numerator / denominator)`` for non-negative integers."""
    return (2 * numerator + denominator) // (2 * denominator)


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (Hamilton's method).

    Each part is the floor of its quota ``total x w / sum(w)``; the units still missing go
    one each to the largest remainders, ties to the lower index. The parts sum to
    ``total``; when ``total <= sum(weights)`` no part exceeds its weight. All weights zero:
    equal weights.

    Raises:
        RefundError: ``total`` or a weight negative, or no weights for a non-zero total.
    """
    if total < 0 or any(w < 0 for w in weights):
        raise RefundError("amounts to spread must not be negative")
    if not weights:
        if total:
            raise RefundError(f"nothing to spread {total} over")
        return []
    if sum(weights) == 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in remainders[: total - sum(parts)]:
        parts[i] += 1
    return parts


def unit_share(amount: int, quantity: int, before: int, units: int) -> int:
    """Part of a line ``amount`` carried by units ``before + 1 .. before + units``.

    The first ``n`` of ``quantity`` equal units carry ``cum(n) = ceil(amount x n /
    quantity)``, and the share is ``cum(before + units) - cum(before)``: every unit gets
    the floor or the ceiling of ``amount / quantity`` (a largest-remainder split of equal
    quotas, the extra minor units spread evenly), any first ``n`` units are less than one
    minor unit above their pro-rata, and all units together carry exactly ``amount``.
    """

    def cum(n: int) -> int:
        return -(-amount * n // quantity)

    return cum(before + units) - cum(before)


# -- terms, policy, result --------------------------------------------------------------


@dataclass(frozen=True)
class LineTerms:
    """One order line as it was paid: ``quantity`` units at ``unit_price_cents``.

    ``line_discount_cents`` is off the whole line; ``tax_rate_bp`` in basis points
    (2000 = 20 %); ``category`` picks the restocking fee.
    """

    line_no: int
    quantity: int
    unit_price_cents: int
    line_discount_cents: int = 0
    tax_rate_bp: int = 0
    category: str | None = None


@dataclass(frozen=True)
class OrderTerms:
    """What the customer paid for an order: lines, order-level reductions, shipping.

    Amounts in minor units of ``currency`` (ISO 4217); ``tax_inclusive``: the prices,
    discounts and voucher include tax.
    """

    currency: str
    lines: tuple[LineTerms, ...]
    order_discount_cents: int = 0
    voucher_cents: int = 0
    shipping_paid_cents: int = 0
    tax_inclusive: bool = True


@dataclass(frozen=True)
class LinePaid:
    """How one line's payment breaks down (rules 1-3 and 6); ``paid = net + tax``."""

    line_no: int
    quantity: int
    gross_cents: int
    line_discount_cents: int
    order_discount_cents: int
    voucher_cents: int
    net_cents: int
    tax_cents: int
    shipping_cents: int

    @property
    def paid_cents(self) -> int:
        """What the customer paid for the line's goods, tax included."""
        return self.net_cents + self.tax_cents


@dataclass(frozen=True)
class RefundPolicy:
    """The policy of one refund (rules 5 and 6).

    ``credit_percent`` applies by grade when not ``merchant_fault``; ``fee_percent`` is
    the restocking fee per category (``"default"`` for the rest); ``refund_shipping``:
    the units' share of the shipping paid is refunded too.
    """

    merchant_fault: bool = False
    credit_percent: float = 100.0
    fee_percent: Mapping[str, float] = field(default_factory=dict)
    refund_shipping: bool = False

    def fee_for(self, category: str | None) -> float:
        """Restocking fee percent of ``category`` (0 for a merchant fault)."""
        if self.merchant_fault:
            return 0.0
        if category is not None and category in self.fee_percent:
            return self.fee_percent[category]
        return self.fee_percent.get("default", 0.0)


@dataclass(frozen=True)
class LineRefund:
    """The refund of ``quantity`` units of one line; amounts in minor units.

    ``paid_cents = net_cents + tax_cents`` is what those units cost the customer;
    ``goods_refund_cents`` what they get back for them after grade and restocking fee,
    ``tax_refund_cents`` the tax part of it; ``shipping_refund_cents`` their share of
    the shipping, when refunded.
    """

    line_no: int
    quantity: int
    net_cents: int
    tax_cents: int
    discount_cents: int
    voucher_cents: int
    restocking_fee_cents: int
    goods_refund_cents: int
    tax_refund_cents: int
    shipping_refund_cents: int

    @property
    def paid_cents(self) -> int:
        """What these units cost the customer (goods, tax included)."""
        return self.net_cents + self.tax_cents

    @property
    def amount_cents(self) -> int:
        """Total refunded for these units: goods plus shipping share."""
        return self.goods_refund_cents + self.shipping_refund_cents


@dataclass(frozen=True)
class Refund:
    """A refund of some units of an order, per line, in the order's currency."""

    currency: str
    lines: tuple[LineRefund, ...]

    @property
    def amount_cents(self) -> int:
        """Total refunded (goods and shipping), minor units."""
        return sum(line.amount_cents for line in self.lines)

    @property
    def paid_cents(self) -> int:
        """What the refunded units cost the customer, minor units."""
        return sum(line.paid_cents for line in self.lines)


def _check_terms(terms: OrderTerms) -> None:
    minor_unit_exponent(terms.currency)
    if not terms.lines:
        raise RefundError("an order has at least one line")
    seen: set[int] = set()
    for line in terms.lines:
        if line.line_no in seen:
            raise RefundError(f"line {line.line_no} appears twice")
        seen.add(line.line_no)
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise RefundError(f"line {line.line_no}: quantity must be 1..{MAX_QUANTITY}")
        if not 0 <= line.tax_rate_bp <= MAX_TAX_RATE_BP:
            raise RefundError(f"line {line.line_no}: tax rate must be 0..{MAX_TAX_RATE_BP} bp")
        amounts = (line.unit_price_cents, line.line_discount_cents)
        if any(not 0 <= a <= MAX_AMOUNT_CENTS for a in amounts):
            raise RefundError(f"line {line.line_no}: amounts must be 0..{MAX_AMOUNT_CENTS}")
        if line.line_discount_cents > line.unit_price_cents * line.quantity:
            raise RefundError(
                f"line {line.line_no}: line discount {line.line_discount_cents} exceeds the "
                f"line's {line.unit_price_cents * line.quantity}"
            )
    for name in ("order_discount_cents", "voucher_cents", "shipping_paid_cents"):
        if not 0 <= getattr(terms, name) <= MAX_AMOUNT_CENTS:
            raise RefundError(f"{name} must be 0..{MAX_AMOUNT_CENTS}")


def paid_lines(terms: OrderTerms) -> list[LinePaid]:
    """Break the order's payment down per line (rules 1-3 and 6), in line order.

    Raises:
        RefundError: unknown currency, a quantity, rate or amount out of bounds, a line
            discount above its line, or order discount plus voucher above the lines.
    """
    _check_terms(terms)
    base = [ln.unit_price_cents * ln.quantity - ln.line_discount_cents for ln in terms.lines]
    reductions = terms.order_discount_cents + terms.voucher_cents
    if reductions > sum(base):
        raise RefundError(
            f"order discount and voucher ({reductions}) exceed the lines ({sum(base)})"
        )
    discounts = largest_remainder(terms.order_discount_cents, base)
    after_discount = [b - d for b, d in zip(base, discounts, strict=True)]
    vouchers = largest_remainder(terms.voucher_cents, after_discount)
    goods = [a - v for a, v in zip(after_discount, vouchers, strict=True)]
    taxes: list[int] = []
    for line, amount in zip(terms.lines, goods, strict=True):
        if terms.tax_inclusive:
            taxes.append(amount - _div_half_up(amount * _BP, _BP + line.tax_rate_bp))
        else:
            taxes.append(_div_half_up(amount * line.tax_rate_bp, _BP))
    nets = [g - t if terms.tax_inclusive else g for g, t in zip(goods, taxes, strict=True)]
    paid = [n + t for n, t in zip(nets, taxes, strict=True)]
    weights = paid if any(paid) else [ln.quantity for ln in terms.lines]
    shipping = largest_remainder(terms.shipping_paid_cents, weights)
    return [
        LinePaid(
            line_no=line.line_no,
            quantity=line.quantity,
            gross_cents=line.unit_price_cents * line.quantity,
            line_discount_cents=line.line_discount_cents,
            order_discount_cents=d,
            voucher_cents=v,
            net_cents=n,
            tax_cents=t,
            shipping_cents=s,
        )
        for line, d, v, n, t, s in zip(
            terms.lines, discounts, vouchers, nets, taxes, shipping, strict=True
        )
    ]


def _tax_part(paid: LinePaid, paid_before: int, units_paid: int) -> int:
    """Tax carried by ``units_paid`` of the line after ``paid_before`` (rule 4)."""
    if paid.paid_cents == 0:
        return 0

    def cum(amount: int) -> int:
        return -(-paid.tax_cents * amount // paid.paid_cents)

    return cum(paid_before + units_paid) - cum(paid_before)


def refund_units(
    terms: OrderTerms,
    units: Mapping[int, int],
    policy: RefundPolicy,
    *,
    already: Mapping[int, int] | None = None,
) -> Refund:
    """The refund of ``units`` (``{line_no: units}``) of the order ``terms``.

    ``already`` (``{line_no: units}``) counts the units of each line refunded before, so
    this refund takes the next units' shares (rule 4) and successive refunds of a line
    add up to exactly its paid amount. Lines come out in line-number order; a line asked
    with 0 units is left out.

    Raises:
        RefundError: invalid terms (see :func:`paid_lines`), an unknown line, a negative
            count, or more units than the line has left after ``already``.
    """
    before_by_line = dict(already or {})
    by_no = {p.line_no: p for p in paid_lines(terms)}
    category = {ln.line_no: ln.category for ln in terms.lines}
    out: list[LineRefund] = []
    for line_no in sorted(units):
        count, before = units[line_no], before_by_line.get(line_no, 0)
        paid = by_no.get(line_no)
        if paid is None:
            raise RefundError(f"line {line_no} is not on the order")
        if count < 0 or before < 0:
            raise RefundError(f"line {line_no}: unit counts must not be negative")
        if before + count > paid.quantity:
            raise RefundError(
                f"line {line_no}: {count} unit(s) asked, {paid.quantity - before} left of "
                f"{paid.quantity}"
            )
        if count == 0:
            continue

        def share(amount: int, qty: int = paid.quantity, j: int = before, k: int = count) -> int:
            return unit_share(amount, qty, j, k)

        units_paid = share(paid.paid_cents)
        tax = _tax_part(paid, share(paid.paid_cents, j=0, k=before), units_paid)
        net = units_paid - tax
        if policy.merchant_fault:
            gross, fee = units_paid, 0
        else:
            gross = percent_of(units_paid, policy.credit_percent)
            fee = percent_of(units_paid, policy.fee_for(category[line_no]))
        goods_refund = max(0, gross - fee)
        out.append(
            LineRefund(
                line_no=line_no,
                quantity=count,
                net_cents=net,
                tax_cents=tax,
                discount_cents=share(paid.order_discount_cents),
                voucher_cents=share(paid.voucher_cents),
                restocking_fee_cents=min(fee, gross),
                goods_refund_cents=goods_refund,
                tax_refund_cents=_div_half_up(goods_refund * tax, units_paid) if units_paid else 0,
                shipping_refund_cents=share(paid.shipping_cents) if policy.refund_shipping else 0,
            )
        )
    return Refund(currency=terms.currency, lines=tuple(out))


_CURRENCIES = frozenset(list_currencies())
