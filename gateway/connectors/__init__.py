"""Shop connectors: orders in, refunds and stock movements out (issue 18).

:mod:`gateway.connectors.base` holds the interface and the durable queue; one module per
shop, named after its library: :mod:`gateway.connectors.shopify` (``ShopifyAPI``, GraphQL
Admin API) and :mod:`gateway.connectors.woocommerce` (``woocommerce``, REST API v3).
``RS_CONNECTORS`` names the shops in use; each takes its credentials from settings.
"""

from __future__ import annotations

from gateway.connectors.base import ShopConnector, takes_location
from gateway.settings import Settings


def build_connectors(settings: Settings) -> dict[str, ShopConnector]:
    """One connector per name in ``settings.connectors`` (none make a call here)."""
    from gateway.connectors.shopify import ShopifyConnector
    from gateway.connectors.woocommerce import WooCommerceConnector

    made: dict[str, ShopConnector] = {}
    for name in settings.connectors:
        made[name] = (
            ShopifyConnector(settings) if name == "shopify" else WooCommerceConnector(settings)
        )
    return made


__all__ = ["ShopConnector", "build_connectors", "takes_location"]
