"""Shopify connector on the official ``ShopifyAPI`` library (GraphQL Admin API).

- **Orders in**: the ``orders`` query (most recently updated first) mapped to
  :class:`gateway.schemas.OrderDraft` as the Shopify CSV export is
  (:mod:`gateway.returns.shopify_csv`): ``name`` (``#1001``) is the order number, line
  ``totalDiscountSet`` the line's discount, the order's ``totalDiscountsSet`` beyond the
  lines' own the order-level discount, tax rate the sum of the line's
  ``taxLines.ratePercentage``, ``taxesIncluded``, the first fulfilment as delivery.
- **Refund**: the order is looked up by name, the line item by SKU, the refund is
  ``refundCreate`` with ``refundLineItems`` (1 unit, ``NO_RESTOCK``: the station's stock
  movement restocks), the shipping refund, and one ``REFUND`` transaction of the amount
  against the order's successful sale or capture.
- **Stock**: the variant is looked up by SKU, the movement is
  ``inventoryAdjustQuantities`` (``available``, delta) at the Shopify location mapped to
  ours in ``shopify_locations``.

Both mutations carry ``@idempotent(key:)`` (optional from API 2026-01, required from
2026-04): the key is a UUID derived from the job's key and the site, so every retry of a
job sends the same one and Shopify applies it once. HTTP 429 and 5xx, timeouts and
``THROTTLED`` GraphQL errors are :class:`ShopBusy` (429's ``Retry-After`` honoured); other
4xx, GraphQL errors and ``userErrors`` are :class:`ShopRefused`. The access token goes in
the ``X-Shopify-Access-Token`` header only and is never logged.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from typing import Any

import shopify

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

#: Largest answer read from the shop (bytes).
MAX_RESPONSE_BYTES = 8 * 1024 * 1024

ORDERS_QUERY = """
query RecentOrders($first: Int!) {
  orders(first: $first, sortKey: UPDATED_AT, reverse: true) {
    nodes {
      name email currencyCode taxesIncluded
      customer { displayName }
      shippingAddress { formatted(withName: true) }
      totalDiscountsSet { shopMoney { amount } }
      totalShippingPriceSet { shopMoney { amount } }
      fulfillments(first: 1) { createdAt }
      lineItems(first: 250) {
        nodes {
          sku name quantity
          originalUnitPriceSet { shopMoney { amount } }
          totalDiscountSet { shopMoney { amount } }
          taxLines { ratePercentage }
        }
      }
    }
  }
}
"""

ORDER_BY_NAME = """
query OrderByName($query: String!) {
  orders(first: 1, query: $query) {
    nodes {
      id name
      lineItems(first: 250) { nodes { id sku } }
      transactions(first: 50) { id kind status gateway }
    }
  }
}
"""

REFUND_CREATE = """
mutation RefundCreate($input: RefundInput!, $key: String!) {
  refundCreate(input: $input) @idempotent(key: $key) {
    refund { id }
    userErrors { field message }
  }
}
"""

VARIANT_BY_SKU = """
query VariantBySku($query: String!) {
  productVariants(first: 1, query: $query) { nodes { id sku inventoryItem { id } } }
}
"""

INVENTORY_ADJUST = """
mutation InventoryAdjust($input: InventoryAdjustQuantitiesInput!, $key: String!) {
  inventoryAdjustQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message }
  }
}
"""


class _AdminGraphQL(shopify.GraphQL):  # type: ignore[misc]
    """The library's GraphQL client for one shop, without its process-global session.

    ``execute`` is the library's request with a timeout and a bounded answer (the
    library's own waits for ever and prints error bodies).
    """

    def __init__(self, endpoint: str, token: str, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.headers = {"X-Shopify-Access-Token": token}
        self.timeout_s = timeout_s

    def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> str:
        headers = self.merge_headers(
            {"Accept": "application/json", "Content-Type": "application/json"}, self.headers
        )
        body = {"query": query, "variables": variables, "operationName": operation_name}
        if not self.endpoint.startswith(("https://", "http://")):  # never file: or others
            raise ShopRefused(f"the Shopify endpoint must be an http(s) URL: {self.endpoint!r}")
        request = urllib.request.Request(
            self.endpoint, json.dumps(body).encode("utf-8"), headers, method="POST"
        )
        # the scheme is checked above (and https outside dev by the settings)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # nosec B310
            data: bytes = response.read(MAX_RESPONSE_BYTES + 1)
        if len(data) > MAX_RESPONSE_BYTES:
            raise ShopRefused(f"answer above {MAX_RESPONSE_BYTES} bytes")
        return data.decode("utf-8")


class ShopifyConnector:
    """The :class:`gateway.connectors.base.ShopConnector` of one Shopify shop."""

    name = "shopify"

    def __init__(self, settings: Settings) -> None:
        token = settings.shopify_access_token
        if settings.shopify_shop is None or token is None:
            raise ValueError("the Shopify connector needs shopify_shop and shopify_access_token")
        version = settings.shopify_api_version
        if settings.shopify_admin_url:
            site = f"{settings.shopify_admin_url.rstrip('/')}/admin/api/{version}"
        else:
            site = shopify.Session(settings.shopify_shop, version, token.get_secret_value()).site
        self._client = _AdminGraphQL(
            f"{site}/graphql.json", token.get_secret_value(), settings.connector_timeout_s
        )
        self._locations = dict(settings.shopify_locations)
        self._site = settings.site

    # -- transport ------------------------------------------------------------------------

    def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """POST one GraphQL operation; its ``data``, or the error mapped (module docstring)."""
        try:
            text = self._client.execute(query, variables)
        except urllib.error.HTTPError as exc:
            code = exc.code
            if code == 429:
                raise ShopBusy("HTTP 429", retry_after_s(exc.headers.get("Retry-After"))) from None
            if code >= 500:
                raise ShopBusy(f"HTTP {code}") from None
            raise ShopRefused(f"HTTP {code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ShopBusy(f"network: {type(exc).__name__}") from None
        try:
            answer = json.loads(text)
        except ValueError:
            raise ShopBusy("answer is not JSON") from None
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            codes = {str((e.get("extensions") or {}).get("code")) for e in errors}
            message = str(errors[0].get("message", ""))[:300]
            if "THROTTLED" in codes:
                raise ShopBusy(f"throttled: {message}")
            raise ShopRefused(f"GraphQL error: {message}")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise ShopBusy("answer has no data")
        return data

    def _mutate(self, query: str, field: str, variables: dict[str, Any]) -> dict[str, Any]:
        payload = self._call(query, variables).get(field) or {}
        user_errors = payload.get("userErrors") or []
        if user_errors:
            first = user_errors[0]
            raise ShopRefused(f"{field}: {first.get('field')}: {first.get('message')}"[:500])
        return dict(payload)

    def _idempotency_key(self, key: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"returns-sorter:{self._site}:{key}"))

    # -- the interface --------------------------------------------------------------------

    def pull_orders(self, *, limit: int = 50) -> list[OrderDraft]:
        """The ``limit`` most recently updated orders as drafts (unreadable ones skipped).

        Raises:
            ShopBusy, ShopRefused: the query failed.
        """
        first = max(1, min(limit, MAX_PULLED_ORDERS))
        nodes = self._call(ORDERS_QUERY, {"first": first})["orders"]["nodes"]
        return readable_drafts(self.name, nodes, _draft, "name")

    def push_refund(self, push: RefundPush) -> str:
        """Refund one unit (module docstring); return the refund's GID.

        Raises:
            ShopBusy: retry later. ShopRefused: no such order, line item or sale to refund.
        """
        name = push.order_ref if push.order_ref.startswith("#") else f"#{push.order_ref}"
        found = self._call(ORDER_BY_NAME, {"query": f"name:{json.dumps(name)}"})
        nodes = found["orders"]["nodes"]
        if not nodes:
            raise ShopRefused(f"no Shopify order {name}")
        order = nodes[0]
        item = next((n for n in order["lineItems"]["nodes"] if n.get("sku") == push.sku), None)
        if item is None:
            raise ShopRefused(f"order {name} has no line item with SKU {push.sku!r}")
        sale = next(
            (
                t
                for t in order.get("transactions") or []
                if t.get("kind") in ("SALE", "CAPTURE") and t.get("status") == "SUCCESS"
            ),
            None,
        )
        if sale is None:
            raise ShopRefused(f"order {name} has no successful sale to refund against")
        refund_input: dict[str, Any] = {
            "orderId": order["id"],
            "note": push.note,
            "notify": False,
            "currency": push.currency,
            "refundLineItems": [
                {"lineItemId": item["id"], "quantity": push.quantity, "restockType": "NO_RESTOCK"}
            ],
            "transactions": [
                {
                    "orderId": order["id"],
                    "parentId": sale["id"],
                    "gateway": sale["gateway"],
                    "kind": "REFUND",
                    "amount": money_text(push.amount_cents, push.currency),
                }
            ],
        }
        if push.shipping_cents:
            refund_input["shipping"] = {"amount": money_text(push.shipping_cents, push.currency)}
        variables = {"input": refund_input, "key": self._idempotency_key(push.key)}
        refund = self._mutate(REFUND_CREATE, "refundCreate", variables).get("refund") or {}
        if not refund.get("id"):
            raise ShopBusy("refundCreate answered without a refund")
        return str(refund["id"])

    def push_stock(self, push: StockPush) -> str:
        """Adjust ``available`` at the mapped location by the movement; return the group GID.

        Raises:
            ShopBusy: retry later. ShopRefused: an unmapped location or unknown SKU.
        """
        location = self._locations.get(push.location)
        if location is None:
            raise ShopRefused(f"stock location {push.location!r} is not in shopify_locations")
        found = self._call(VARIANT_BY_SKU, {"query": f"sku:{json.dumps(push.sku)}"})
        nodes = found["productVariants"]["nodes"]
        if not nodes:
            raise ShopRefused(f"no Shopify variant with SKU {push.sku!r}")
        adjust_input = {
            "reason": "restock" if push.quantity > 0 else "correction",
            "name": "available",
            "referenceDocumentUri": f"returns-sorter://rma/{push.rma_number}",
            "changes": [
                {
                    "delta": push.quantity,
                    "inventoryItemId": nodes[0]["inventoryItem"]["id"],
                    "locationId": location,
                }
            ],
        }
        variables = {"input": adjust_input, "key": self._idempotency_key(push.key)}
        payload = self._mutate(INVENTORY_ADJUST, "inventoryAdjustQuantities", variables)
        group = payload.get("inventoryAdjustmentGroup") or {}
        if not group.get("id"):
            raise ShopBusy("inventoryAdjustQuantities answered without an adjustment")
        return str(group["id"])


def _money(node: dict[str, Any] | None, currency: str) -> int:
    amount = ((node or {}).get("shopMoney") or {}).get("amount") or "0"
    return to_minor_units(str(amount), currency)


def _draft(node: dict[str, Any]) -> OrderDraft:
    """One ``orders`` node as a draft (see the module docstring)."""
    currency = str(node["currencyCode"])
    lines: list[dict[str, Any]] = []
    for item in node["lineItems"]["nodes"]:
        rate = sum(
            (Decimal(str(t.get("ratePercentage") or 0)) for t in item.get("taxLines") or []),
            Decimal(0),
        )
        lines.append(
            {
                "sku": item.get("sku") or "",
                "name": (item.get("name") or "")[:200],
                "ordered_quantity": item["quantity"],
                "delivered_quantity": item["quantity"],
                "unit_price_cents": _money(item.get("originalUnitPriceSet"), currency),
                "line_discount_cents": _money(item.get("totalDiscountSet"), currency),
                "tax_rate_bp": int((rate * 100).to_integral_value()),
            }
        )
    on_lines = sum(line["line_discount_cents"] for line in lines)
    fulfilments = node.get("fulfillments") or []
    address = (node.get("shippingAddress") or {}).get("formatted") or []
    return OrderDraft.model_validate(
        {
            "order_ref": node["name"],
            "customer": ((node.get("customer") or {}).get("displayName") or "")[:128],
            "customer_email": node.get("email") or "",
            "customer_address": "\n".join(str(a) for a in address),
            "currency": currency,
            "discount_cents": max(0, _money(node.get("totalDiscountsSet"), currency) - on_lines),
            "shipping_paid_cents": _money(node.get("totalShippingPriceSet"), currency),
            "tax_inclusive": bool(node.get("taxesIncluded")),
            "delivered_at": fulfilments[0]["createdAt"] if fulfilments else None,
            "lines": lines,
        }
    )
