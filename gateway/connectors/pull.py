"""``returns-gateway pull-orders SHOP [--limit N]``: upsert a shop's recent orders.

``SHOP`` is a connector of ``RS_CONNECTORS`` (``shopify``, ``woocommerce``). Each pulled
order is stored with :func:`gateway.services.orders.upsert_order` (pulling twice changes
nothing); prints one result per order, then the counts. Exit 0 when every order was
stored, 1 when one was refused, 2 on bad settings or a failed pull.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pydantic import ValidationError

from gateway.connectors import build_connectors
from gateway.connectors.base import MAX_PULLED_ORDERS, ShopConnector, ShopError
from gateway.db import Database
from gateway.services.orders import InvalidOrder, upsert_order
from gateway.settings import DEFAULT_SITE, Settings


def pull_orders(
    db: Database, connector: ShopConnector, *, limit: int, site: str = DEFAULT_SITE
) -> list[str]:
    """Upsert the shop's ``limit`` most recent orders; one ``ref: outcome`` line each.

    New orders go to ``site`` (the gateway's default site).

    Raises:
        gateway.connectors.base.ShopError: the pull failed (nothing stored).
    """
    lines: list[str] = []
    for draft in connector.pull_orders(limit=limit):
        with db.session() as session:
            try:
                _order, outcome = upsert_order(session, draft, site=site)
            except InvalidOrder as exc:
                session.rollback()
                outcome = f"refused: {exc}"
        lines.append(f"{draft.order_ref}: {outcome}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="returns-gateway pull-orders",
        description="Create or update the shop's most recent orders in RS_DATABASE_URL.",
    )
    parser.add_argument("shop", choices=["shopify", "woocommerce"])
    parser.add_argument(
        "--limit",
        type=int,
        default=50,
        choices=range(1, MAX_PULLED_ORDERS + 1),
        metavar=f"1..{MAX_PULLED_ORDERS}",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"pull-orders: invalid settings:\n{exc}")
        return 2
    if args.shop not in settings.connectors:
        print(f"pull-orders: {args.shop} is not in RS_CONNECTORS")
        return 2
    db = Database(settings.database_url)
    try:
        db.migrate()
        lines = pull_orders(
            db, build_connectors(settings)[args.shop], limit=args.limit, site=settings.site
        )
    except ShopError as exc:
        print(f"pull-orders: {args.shop}: {exc}")
        return 2
    finally:
        db.dispose()
    for line in lines:
        print(line)
    refused = sum(1 for line in lines if ": refused: " in line)
    print(f"{len(lines)} pulled, {refused} refused")
    return 1 if refused else 0
