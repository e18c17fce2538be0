"""Local HTTP servers that answer like Shopify's GraphQL Admin API and WooCommerce REST v3.

Real servers on a free port (``http.server`` in a thread), the lowest layer of a shop:
the connectors run their real libraries against them. Answers follow the shapes of each
shop's published API reference (Shopify: ``{"data": ..., "extensions": {"cost": ...}}``,
``userErrors``, ``THROTTLED``; WooCommerce: resources as JSON, errors as ``{"code",
"message", "data": {"status"}}``). ``faults`` scripts the next answers of one operation:
``(status, headers)`` answers instead of serving, or ``"lost"`` serves the call and then
answers 502 (the answer lost on the way back).

Shopify honours ``@idempotent(key:)`` as documented: a mutation repeated with a key
already used returns the first result and changes nothing.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Fault = tuple[int, dict[str, str]] | str


class FakeShop:
    """Shared state of a fake shop: requests seen, scripted faults, what was created."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.url = ""

    def calls(self, operation: str) -> list[dict[str, Any]]:
        """The requests of one operation, in order."""
        return [r for r in self.requests if r["operation"] == operation]

    def operation(self, method: str, path: str, body: Any) -> str:
        """Name of the operation a request is (the key of ``faults``)."""
        raise NotImplementedError

    def serve(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Status and JSON answer of one request."""
        raise NotImplementedError


class FakeShopify(FakeShop):
    """Shopify GraphQL Admin API: orders, refundCreate, variants, inventoryAdjustQuantities."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, dict[str, Any]] = {}
        self.variants: dict[str, str] = {}  # SKU -> InventoryItem GID
        self.refunds: list[dict[str, Any]] = []
        self.adjustments: list[dict[str, Any]] = []
        self.by_key: dict[str, dict[str, Any]] = {}

    def operation(self, method: str, path: str, body: Any) -> str:
        found = re.search(r"(query|mutation)\s+(\w+)", (body or {}).get("query", ""))
        return found.group(2) if found else "?"

    def _cost(self) -> dict[str, Any]:
        status = {"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0}
        return {"requestedQueryCost": 10, "actualQueryCost": 10, "throttleStatus": status}

    def serve(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not re.fullmatch(r"/admin/api/\d{4}-\d{2}/graphql\.json", path):
            return 404, {"errors": "Not Found"}
        op = self.operation(method, path, body)
        variables = body.get("variables") or {}
        key = variables.get("key")
        if key is not None and key in self.by_key:  # @idempotent: the first result again
            return 200, {"data": self.by_key[key], "extensions": {"cost": self._cost()}}
        if op == "OrderByName":
            name = json.loads(variables["query"].removeprefix("name:"))
            nodes = [self.orders[name]] if name in self.orders else []
            data: dict[str, Any] = {"orders": {"nodes": nodes}}
        elif op == "RecentOrders":
            data = {"orders": {"nodes": list(self.orders.values())}}
        elif op == "RefundCreate":
            refund_id = f"gid://shopify/Refund/{len(self.refunds) + 1}"
            self.refunds.append({"id": refund_id, **variables["input"]})
            data = {"refundCreate": {"refund": {"id": refund_id}, "userErrors": []}}
        elif op == "VariantBySku":
            sku = json.loads(variables["query"].removeprefix("sku:"))
            item = self.variants.get(sku)
            nodes = [{"id": "gid://shopify/ProductVariant/9", "sku": sku,
                      "inventoryItem": {"id": item}}] if item else []  # fmt: skip
            data = {"productVariants": {"nodes": nodes}}
        elif op == "InventoryAdjust":
            group_id = f"gid://shopify/InventoryAdjustmentGroup/{len(self.adjustments) + 1}"
            self.adjustments.append({"id": group_id, **variables["input"]})
            data = {
                "inventoryAdjustQuantities": {
                    "inventoryAdjustmentGroup": {"id": group_id},
                    "userErrors": [],
                }
            }
        else:
            return 200, {"errors": [{"message": f"unknown operation {op}"}]}
        if key is not None:
            self.by_key[key] = data
        return 200, {"data": data, "extensions": {"cost": self._cost()}}


class FakeWooCommerce(FakeShop):
    """WooCommerce REST API v3: orders, order refunds, products (stock)."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[int, dict[str, Any]] = {}
        self.products: dict[int, dict[str, Any]] = {}
        self.refunds: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.product_puts: list[dict[str, Any]] = []

    def operation(self, method: str, path: str, body: Any) -> str:
        route = re.sub(r"/\d+", "/{id}", path.removeprefix("/wp-json/wc/v3/"))
        return f"{method} {route}"

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, Any]:
        return status, {"code": code, "message": message, "data": {"status": status}}

    def serve(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = path.removeprefix("/wp-json/wc/v3/").split("/")
        if parts[0] == "orders" and len(parts) >= 2:
            order = self.orders.get(int(parts[1]))
            if order is None:
                return self._error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
            if len(parts) == 2 and method == "GET":
                return 200, order
            if parts[2:] == ["refunds"] and method == "GET":
                return 200, list(reversed(self.refunds[order["id"]]))
            if parts[2:] == ["refunds"] and method == "POST":
                refund = {"id": 700 + sum(map(len, self.refunds.values())), **body}
                refund["amount"] = body["amount"]
                self.refunds[order["id"]].append(refund)
                return 201, refund
        if parts == ["orders"] and method == "GET":
            return 200, list(self.orders.values())
        if parts == ["products"] and method == "GET":
            return 200, [p for p in self.products.values() if p["sku"] == query.get("sku")]
        if parts[0] == "products" and len(parts) == 2 and method == "PUT":
            product = self.products.get(int(parts[1]))
            if product is None:
                return self._error(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
            self.product_puts.append(body)
            product["stock_quantity"] = body["stock_quantity"]
            product["meta_data"] = [*product["meta_data"], *body.get("meta_data", [])]
            return 200, product
        return self._error(404, "rest_no_route", "No route was found matching the URL.")


def _handler(shop: FakeShop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            split = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(split.query).items()}
            with shop.lock:
                op = shop.operation(self.command, split.path, body)
                shop.requests.append({"operation": op, "path": split.path, "query": query,
                                      "body": body, "headers": dict(self.headers)})  # fmt: skip
                fault = shop.faults[op].pop(0) if shop.faults[op] else None
                if isinstance(fault, tuple):
                    status, headers = fault
                    return self._answer(status, {"errors": "scripted fault"}, headers)
                status, answer = shop.serve(self.command, split.path, query, body)
            if fault == "lost":
                return self._answer(502, {"errors": "Bad Gateway"})
            self._answer(status, answer)

        do_GET = do_POST = do_PUT = _handle

    return Handler


@contextmanager
def running(shop: FakeShop) -> Iterator[FakeShop]:
    """Serve ``shop`` on a free port of 127.0.0.1 (``shop.url``) while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(shop))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    shop.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield shop
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
