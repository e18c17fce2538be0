"""Gateway to station through the real broker: an RMA shipped with its carrier tracking
number reaches the station's store, and a parcel showing only the carrier's barcode is
sorted to its lane (issue 18 item 4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.sorter import Decision, SorterCore
from edge.sorter.model import Reason
from edge.store import StationStore
from gateway.db import Database
from gateway.schemas import RmaDraft
from gateway.services.announcements import to_announcement
from gateway.services.rmas import create_rma
from gateway.settings import Settings
from simulator.testing import demo_belt, label_trusting_policy

pytestmark = pytest.mark.broker

UPS = "1Z999AA10123456784"


def test_a_parcel_with_only_its_carrier_barcode_is_sorted_after_the_announcement(
    tmp_path: Path,
    gateway_db: Database,
    make_bridge: Callable[..., Any],
    make_link: Callable[..., Any],
    site: str,
    wait: Any,
) -> None:
    bridge = make_bridge()
    store = StationStore(tmp_path / "st1.db")
    link = make_link(store=store)
    link.start()
    wait(lambda: link.in_sync, what="in sync")
    draft = RmaDraft(
        order_ref="O-1",
        reason="size",
        resolution="refund",
        lines=[{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 900}],
        tracking_number=UPS.lower(),
    )
    with gateway_db.session() as s:
        rma = create_rma(s, Settings(site=site), draft)
        wire = to_announcement(rma)
        assert (wire.schema_version, wire.tracking_number, wire.carrier) == (3, UPS, "UPS")
        assert bridge.publish_rma(wire)
    wait(lambda: store.find_rmas("tracking", UPS) == (rma.number,), what="tracking indexed")

    core = SorterCore(demo_belt(), store, label_trusting_policy())
    actions: list[object] = []
    actions += core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    actions += core.on_barcode(550.0, UPS)
    for t in range(0, 6000, 5):
        actions += core.advance(float(t))
    [decision] = [a for a in actions if isinstance(a, Decision)]
    assert (decision.reason, decision.lane.name, decision.rma_number) == (
        Reason.MATCHED,
        "restock",
        rma.number,
    )
    assert f"identified by carrier tracking number {UPS}" in decision.explanation
    link.stop()
    store.close()
