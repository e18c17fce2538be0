"""WooCommerce connector on the ``woocommerce`` library (REST API v3, ``wc/v3``).

- **Orders in**: ``GET orders`` (newest first) mapped to
  :class:`gateway.schemas.OrderDraft`: ``number`` is the order number, line ``subtotal``
  / ``quantity`` the unit price and ``subtotal - total`` the line's discount (WooCommerce
  spreads coupons onto lines itself), ``shipping_total``, the line's tax rate from its
  ``total_tax`` over its ``total``; line amounts in the REST API are before tax whatever
  the shop displays, so the draft's prices exclude tax.
- **Refund**: ``GET orders/{id}`` (``id`` = our order number without ``#``) finds the
  line item by SKU; ``GET orders/{id}/refunds`` is looked through first for a refund whose
  ``reason`` carries the job's key (``[rs:credit:...]``): found, it is the answer and
  nothing is created (idempotent on the shop side). Otherwise ``POST orders/{id}/refunds``
  with ``amount``, ``reason``, ``api_refund`` (setting) and ``line_items`` (the line item,
  1 unit, its ``refund_total`` and ``refund_tax`` on the line's first tax rate; shipping
  on the order's first shipping line).
- **Stock**: ``GET products?sku=`` finds the product; a product ``meta_data`` entry
  ``rs_stock_move:<key>`` marks a movement already applied (looked up first); otherwise
  ``PUT products/{id}`` sets ``stock_quantity`` to the current one plus the movement and
  adds the marker in the same request. (WooCommerce has no atomic increment: a sale
  between the GET and the PUT is overwritten; the lead's stock count corrects it.)

429 (``Retry-After`` honoured), 5xx, timeouts and network errors are :class:`ShopBusy`;
other 4xx :class:`ShopRefused` with WooCommerce's ``code``. The consumer key and secret go
to the library only (HTTP basic auth over HTTPS, OAuth 1.0a signatures over plain HTTP)
and are never logged.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from woocommerce import API

from gateway.connectors.base import (
    MAX_PULLED_ORDERS,
    RefundPush,
    ShopBusy,
    ShopRefused,
    StockPush,
    money_text,
    readable_drafts,
    retry_after_s,
)
from gateway.returns.refunds import to_minor_units
from gateway.schemas import OrderDraft
from gateway.settings import Settings

log = logging.getLogger(__name__)

_MOVE_KEY = "rs_stock_move:"


class WooCommerceConnector:
    """The :class:`gateway.connectors.base.ShopConnector` of one WooCommerce shop."""

    name = "woocommerce"

    def __init__(self, settings: Settings) -> None:
        key, secret = settings.woocommerce_consumer_key, settings.woocommerce_consumer_secret
        if settings.woocommerce_url is None or key is None or secret is None:
            raise ValueError("the WooCommerce connector needs its URL, consumer key and secret")
        self._api = API(
            url=settings.woocommerce_url,
            consumer_key=key.get_secret_value(),
            consumer_secret=secret.get_secret_value(),
            version="wc/v3",
            timeout=settings.connector_timeout_s,
        )
        self._api_refund = settings.woocommerce_api_refund

    # -- transport ------------------------------------------------------------------------

    def _call(self, method: str, endpoint: str, data: Any = None, **params: Any) -> Any:
        """One REST call through the library; the decoded JSON or the error mapped."""
        try:
            if method == "GET":
                response = self._api.get(endpoint, params=params or None)
            elif method == "POST":
                response = self._api.post(endpoint, data)
            else:
                response = self._api.put(endpoint, data)
        except requests.RequestException as exc:
            raise ShopBusy(f"network: {type(exc).__name__}") from None
        code = response.status_code
        if code == 429:
            raise ShopBusy("HTTP 429", retry_after_s(response.headers.get("Retry-After")))
        if code >= 500:
            raise ShopBusy(f"HTTP {code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if code >= 400:
            detail = body.get("code", "") if isinstance(body, dict) else ""
            raise ShopRefused(f"HTTP {code} {detail}".strip()[:300])
        if body is None:
            raise ShopBusy(f"{method} {endpoint}: answer is not JSON")
        return body

    @staticmethod
    def _order_id(order_ref: str) -> str:
        number = order_ref.removeprefix("#")
        if not number.isdigit() or len(number) > 18:
            raise ShopRefused(f"order {order_ref!r} is not a WooCommerce order id")
        return number

    # -- the interface --------------------------------------------------------------------

    def pull_orders(self, *, limit: int = 50) -> list[OrderDraft]:
        """The ``limit`` newest orders as drafts (unreadable ones skipped and logged).

        Raises:
            ShopBusy, ShopRefused: the request failed.
        """
        per_page = max(1, min(limit, 100, MAX_PULLED_ORDERS))
        orders = self._call("GET", "orders", per_page=per_page, orderby="date", order="desc")
        return readable_drafts(self.name, orders, _draft, "id")

    def push_refund(self, push: RefundPush) -> str:
        """Refund one unit (module docstring); return the refund's id.

        Raises:
            ShopBusy: retry later. ShopRefused: no such order or line item.
        """
        order_id = self._order_id(push.order_ref)
        marker = f"[rs:{push.key}]"
        for refund in self._call("GET", f"orders/{order_id}/refunds", per_page=100):
            if marker in str(refund.get("reason", "")):
                return str(refund["id"])
        order = self._call("GET", f"orders/{order_id}")
        item = next((i for i in order.get("line_items", []) if i.get("sku") == push.sku), None)
        if item is None:
            raise ShopRefused(f"order {order_id} has no line item with SKU {push.sku!r}")
        goods = push.amount_cents - push.tax_cents - push.shipping_cents
        line: dict[str, Any] = {
            "id": item["id"],
            "quantity": push.quantity,
            "refund_total": money_text(goods, push.currency),
        }
        taxes = item.get("taxes") or []
        if push.tax_cents and taxes:
            line["refund_tax"] = [
                {"id": taxes[0]["id"], "refund_total": money_text(push.tax_cents, push.currency)}
            ]
        lines = [line]
        shipping_lines = order.get("shipping_lines") or []
        if push.shipping_cents and shipping_lines:
            lines.append(
                {
                    "id": shipping_lines[0]["id"],
                    "refund_total": money_text(push.shipping_cents, push.currency),
                }
            )
        body = {
            "amount": money_text(push.amount_cents, push.currency),
            "reason": push.note,
            "api_refund": self._api_refund,
            "line_items": lines,
        }
        created = self._call("POST", f"orders/{order_id}/refunds", body)
        return str(created["id"])

    def push_stock(self, push: StockPush) -> str:
        """Add the movement to the product's ``stock_quantity`` once; return the product id.

        Raises:
            ShopBusy: retry later. ShopRefused: unknown SKU, or stock not managed.
        """
        found = self._call("GET", "products", sku=push.sku)
        if not found:
            raise ShopRefused(f"no WooCommerce product with SKU {push.sku!r}")
        product = found[0]
        marker = f"{_MOVE_KEY}{push.key}"
        if any(m.get("key") == marker for m in product.get("meta_data") or []):
            return str(product["id"])
        if not product.get("manage_stock"):
            raise ShopRefused(f"product {product['id']} ({push.sku}) does not manage stock")
        quantity = int(product.get("stock_quantity") or 0) + push.quantity
        body = {"stock_quantity": quantity, "meta_data": [{"key": marker, "value": push.quantity}]}
        updated = self._call("PUT", f"products/{product['id']}", body)
        return str(updated["id"])


def _draft(order: dict[str, Any]) -> OrderDraft:
    """One ``GET orders`` item as a draft (see the module docstring)."""
    currency = str(order["currency"])
    lines: list[dict[str, Any]] = []
    for item in order["line_items"]:
        quantity = int(item["quantity"])
        subtotal = to_minor_units(str(item["subtotal"]), currency)
        total = to_minor_units(str(item["total"]), currency)
        tax = to_minor_units(str(item.get("total_tax") or "0"), currency)
        unit, rest = divmod(subtotal, max(quantity, 1))
        if rest:
            raise ValueError(f"line {item.get('id')}: subtotal {subtotal} is not per unit")
        try:
            rate = Decimal(tax) / Decimal(total) * 10_000 if total and tax else Decimal(0)
        except InvalidOperation as exc:
            raise ValueError(str(exc)) from exc
        lines.append(
            {
                "sku": item.get("sku") or "",
                "name": (item.get("name") or "")[:200],
                "ordered_quantity": quantity,
                "delivered_quantity": quantity,
                "unit_price_cents": unit,
                "line_discount_cents": subtotal - total,
                "tax_rate_bp": int(rate.to_integral_value()),
            }
        )
    shipping = order.get("shipping") or {}
    address = [
        " ".join(p for p in (shipping.get("first_name"), shipping.get("last_name")) if p),
        shipping.get("company"),
        shipping.get("address_1"),
        shipping.get("address_2"),
        " ".join(p for p in (shipping.get("postcode"), shipping.get("city")) if p),
        shipping.get("state"),
        shipping.get("country"),
    ]
    billing = order.get("billing") or {}
    return OrderDraft.model_validate(
        {
            "order_ref": str(order.get("number") or order["id"]),
            "customer": " ".join(
                p for p in (billing.get("first_name"), billing.get("last_name")) if p
            )[:128],
            "customer_email": billing.get("email") or "",
            "customer_address": "\n".join(str(p) for p in address if p),
            "currency": currency,
            "shipping_paid_cents": to_minor_units(str(order.get("shipping_total") or 0), currency),
            "tax_inclusive": False,
            "delivered_at": order.get("date_completed_gmt") and f"{order['date_completed_gmt']}Z",
            "lines": lines,
        }
    )
