"""The Shopify admin "Export orders" CSV as an order-import :class:`Layout`.

Shopify's export (Orders > Export, "Plain CSV file") has one row per line item; the first
row of an order carries the order-level cells (``Email``, ``Currency``, ``Subtotal``,
``Shipping``, ``Taxes``, ``Total``, ``Discount Amount``, ``Fulfilled at``, addresses, tax
names), the order's other rows repeat ``Name`` (``#1001``) with those cells blank. The
column set changes between Shopify versions, so columns are mapped by name and every name
this table does not know is ignored. Required: ``Name``, ``Lineitem quantity``,
``Lineitem price``, ``Lineitem sku``.

How the cells become an :class:`gateway.schemas.OrderDraft` (amounts are decimal amounts
of ``Currency``, read with :func:`gateway.returns.refunds.to_minor_units`):

- ``Name`` is the order number as it is (``#1001``); ``Email`` the customer's e-mail;
  ``Billing Name`` (else ``Shipping Name``) the customer; the shipping address's name,
  company, address lines, ``Zip City``, province and country its address lines.
- ``Lineitem quantity`` units ordered and delivered; ``Lineitem price`` the unit price
  before discounts; ``Lineitem discount`` the discount allocated to that line.
- ``Discount Amount`` is the order's whole discount: the part not already allocated to
  lines (``Discount Amount`` - sum of ``Lineitem discount``) is the order-level discount,
  spread over the lines by the largest-remainder rule of :mod:`gateway.returns.refunds`.
  A ``Discount Amount`` below the lines' own discounts refuses the order.
- ``Shipping`` is the shipping paid. Tax: the rate is the sum of the percentages named in
  ``Tax 1 Name`` .. ``Tax 5 Name`` (``VAT 20%``; ``GST 5%`` + ``PST 7%`` is 12 %),
  applied to lines whose ``Lineitem taxable`` is not ``false``; prices include tax when
  ``Total = Subtotal + Shipping`` and exclude it when ``Total = Subtotal + Shipping +
  Taxes`` (any other total refuses the order). ``Taxes`` 0 means no tax.
- ``Fulfilled at`` (``2026-11-20 10:15:00 +0100``, the shop's local time with its
  offset) is the delivery time (in UTC within 1970-01-01 .. 2999-12-31:
  :data:`gateway.schemas.BoundedDatetime`); blank while unfulfilled.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from gateway.returns.order_csv import (
    CellContext,
    Column,
    Layout,
    _count,
    _flag,
    _money,
    _text,
)

#: ``Tax N Name`` columns read (Shopify exports five).
TAX_NAME_COLUMNS = tuple(f"tax {n} name" for n in range(1, 6))
_RATE = re.compile(r"(\d{1,3}(?:[.,]\d{1,2})?)\s*%")
_ADDRESS = ("company", "address1", "address2", "city", "zip", "province", "country")


def shopify_time(text: str, _ctx: CellContext) -> datetime:
    """A Shopify export time: ``2026-11-20 10:15:00 +0100`` (or ISO 8601 with an offset).

    Raises:
        ValueError: not such a time, or no UTC offset.
    """
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a UTC offset")
    return moment


def _rate_bp(names: list[str]) -> int:
    """Sum of the percentages named by the tax names, in basis points."""
    total = 0
    for name in names:
        found = _RATE.search(name)
        if found is None:
            raise ValueError(f"tax {name!r} names no rate (e.g. 'VAT 20%')")
        whole, _, frac = found.group(1).replace(",", ".").partition(".")
        total += int(whole) * 100 + int((frac + "00")[:2])
    if total > 10_000:
        raise ValueError(f"tax rates {names!r} add up to more than 100 %")
    return total


def _finish(body: dict[str, Any]) -> None:
    """Turn the read cells into the draft's body (see the module docstring)."""
    ship = {part: body.pop(f"_ship_{part}") for part in ("name", *_ADDRESS)}
    body["customer"] = body.pop("_billing_name") or ship["name"] or ""
    city = " ".join(p for p in (ship["zip"], ship["city"]) if p)
    parts = [ship["name"], ship["company"], ship["address1"], ship["address2"], city]
    body["customer_address"] = "\n".join(
        p for p in (*parts, ship["province"], ship["country"]) if p
    )
    tax_names = [n for n in (body.pop(f"_tax_{k}") for k in range(1, 6)) if n]
    taxes, subtotal, total = body.pop("_taxes"), body.pop("_subtotal"), body.pop("_total")
    rate_bp = _rate_bp(tax_names) if taxes else 0
    if taxes and (subtotal is None or total is None):
        raise ValueError("Taxes without Subtotal and Total: cannot tell if prices include tax")
    shipping = body["shipping_paid_cents"]
    if not taxes:
        body["tax_inclusive"] = True
    elif total == subtotal + shipping + taxes:
        body["tax_inclusive"] = False
    elif total == subtotal + shipping:
        body["tax_inclusive"] = True
    else:
        raise ValueError(
            f"Total {total} is neither Subtotal + Shipping ({subtotal + shipping}, tax "
            f"included) nor Subtotal + Shipping + Taxes ({subtotal + shipping + taxes}) "
            "(minor units)"
        )
    for line in body["lines"]:
        quantity = line.pop("_quantity")
        line["ordered_quantity"] = line["delivered_quantity"] = quantity
        line["tax_rate_bp"] = rate_bp if line.pop("_taxable") else 0
    discount = body.pop("_discount")
    on_lines = sum(line["line_discount_cents"] for line in body["lines"])
    if discount < on_lines:
        raise ValueError(
            f"Discount Amount ({discount}) is below the lines' Lineitem discount ({on_lines})"
        )
    body["discount_cents"] = discount - on_lines


def _order(header: str, target: str, parse: Any = _text, **kw: Any) -> Column:
    return Column(header, target, parse, order_level=True, **kw)


SHOPIFY = Layout(
    name="shopify",
    columns=(
        _order("name", "order_ref", required=True, max_chars=64),
        _order("email", "customer_email", max_chars=254, default=""),
        _order("currency", "currency", max_chars=3),
        _order("subtotal", "_subtotal", _money),
        _order("shipping", "shipping_paid_cents", _money, default=0),
        _order("taxes", "_taxes", _money, default=0),
        _order("total", "_total", _money),
        _order("discount amount", "_discount", _money, default=0),
        _order("fulfilled at", "delivered_at", shopify_time),
        _order("billing name", "_billing_name", max_chars=128, default=""),
        _order("shipping name", "_ship_name", max_chars=128, default=""),
        *(_order(f"shipping {part}", f"_ship_{part}", default="") for part in _ADDRESS),
        *(_order(h, f"_tax_{k}", default="") for k, h in enumerate(TAX_NAME_COLUMNS, 1)),
        Column("lineitem quantity", "_quantity", _count, required=True),
        Column("lineitem price", "unit_price_cents", _money, required=True),
        Column("lineitem sku", "sku", _text, required=True, max_chars=64),
        Column("lineitem name", "name", _text, default=""),
        Column("lineitem discount", "line_discount_cents", _money, default=0),
        Column("lineitem taxable", "_taxable", _flag, default=True),
    ),
    ignore_unknown=True,
    finish=_finish,
    signature=frozenset({"lineitem quantity", "lineitem price", "lineitem sku"}),
)
"""Shopify's "Export orders" CSV (see the module docstring)."""
