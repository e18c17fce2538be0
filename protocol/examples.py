"""One real message of each kind, for the AsyncAPI document's message examples.

Each example is a model instance, so it passes every validator the receiver runs; the
document carries it as :func:`protocol.messages.encode` writes it on the wire (JSON), not as
a hand-written dict that could drift from the models. ``tests/link/test_asyncapi_valid.py``
checks that every message of the contract has one and that each decodes back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from protocol.messages import (
    CodeClass,
    CodeRead,
    Command,
    CommandName,
    CommandReply,
    CommandState,
    Evidence,
    HeadRevision,
    ParcelEvent,
    PhotoUpload,
    RmaAnnouncement,
    RmaCancellation,
    RmaLine,
    StationStatus,
    SyncBatch,
    SyncRequest,
    Telemetry,
    UnitReceipt,
    _Message,
    encode,
)
from protocol.policy import DispositionPolicy, PolicyRule

_AT = datetime(2026, 3, 2, 9, 30, 0, tzinfo=UTC)
_JPEG_SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

_ANNOUNCEMENT = RmaAnnouncement(
    number="RMA-000123-7",
    revision=41,
    order_ref="O-2026-0042",
    reason="size",
    resolution="refund",
    lines=(
        RmaLine(
            line_no=1,
            sku="TSHIRT-M-BLUE",
            quantity=1,
            gtin="04012345678901",
            unit_value_cents=1999,
            weight_g=220,
        ),
    ),
)

EXAMPLES: dict[type[_Message], tuple[tuple[str, str, _Message], ...]] = {
    RmaAnnouncement: (("authorized", "An authorised RMA with one line", _ANNOUNCEMENT),),
    RmaCancellation: (
        (
            "cancelled",
            "The shop cancelled the RMA",
            RmaCancellation(number="RMA-000123-7", revision=42),
        ),
    ),
    DispositionPolicy: (
        (
            "default",
            "Grade A restocks, everything else quarantines",
            DispositionPolicy(
                version="site-1@3",
                rules=(
                    PolicyRule(disposition="restock", reason="restock_grade_a", grades=("A",)),
                    PolicyRule(disposition="quarantine", reason="needs_review"),
                ),
            ),
        ),
    ),
    StationStatus: (
        (
            "birth",
            "Birth message after connecting",
            StationStatus(
                station="st-1",
                state="online",
                software_version="0.1.0",
                config_hash="3f2a9c",
                rma_revision=41,
            ),
        ),
        ("will", "Last will set at connect", StationStatus(station="st-1", state="offline")),
    ),
    ParcelEvent: (
        (
            "restocked",
            "A parcel verified by GTIN and diverted to restock",
            ParcelEvent(
                event_id="5d41402abc4b2a76b9719d911017c592",
                station="st-1",
                parcel_id=1017,
                inducted_at=_AT,
                length_mm=310.0,
                barcode="RMA-000123-7",
                rma_number="RMA-000123-7",
                lane="restock",
                disposition="restock",
                reason="restock_grade_a",
                diverted=True,
                policy_version="site-1@3",
                grade="A",
                grade_confidence=0.93,
                units=(
                    UnitReceipt(
                        line_no=1,
                        sku="TSHIRT-M-BLUE",
                        unit=1,
                        evidence=Evidence.GTIN,
                        verified=True,
                        identifier="04012345678901",
                    ),
                ),
                codes=(
                    CodeRead(code_class=CodeClass.RMA_LABEL, value="RMA-000123-7"),
                    CodeRead(code_class=CodeClass.RETAIL, value="04012345678901"),
                ),
                divert_confirmed=True,
            ),
        ),
    ),
    PhotoUpload: (
        (
            "photo",
            "A (truncated) parcel photo",
            PhotoUpload(station="st-1", sha256=_JPEG_SHA256, taken_at=_AT, jpeg_b64="/9j/4AAQ"),
        ),
    ),
    Telemetry: (
        (
            "periodic",
            "Counters every 30 s",
            Telemetry(station="st-1", at=_AT, metrics={"parcels": 1017.0, "outbox_depth": 0.0}),
        ),
    ),
    HeadRevision: (
        (
            "after_batch",
            "The head after an announcement batch",
            HeadRevision(site="site-1", revision=41),
        ),
    ),
    SyncRequest: (
        (
            "reconnect",
            "Catch-up after a reconnect",
            SyncRequest(station="st-1", after_revision=40, request_id="c0ffee01"),
        ),
    ),
    SyncBatch: (
        (
            "last",
            "The last batch of a catch-up",
            SyncBatch(request_id="c0ffee01", announcements=(_ANNOUNCEMENT,), head_revision=41),
        ),
    ),
    Command: (
        (
            "gate_test",
            "Pulse the restock gate",
            Command(
                request_id="req-0001",
                command=CommandName.GATE_TEST,
                issued_at=_AT,
                args={"lane": "restock"},
            ),
        ),
    ),
    CommandReply: (
        (
            "done",
            "The gate test ran",
            CommandReply(
                request_id="req-0001",
                station="st-1",
                command=CommandName.GATE_TEST,
                state=CommandState.DONE,
            ),
        ),
    ),
}
"""model -> ((example name, summary, instance), ...)."""


def wire_examples(model: type[_Message]) -> list[dict[str, Any]]:
    """The AsyncAPI ``examples`` of ``model``: name, summary and the payload as encoded.

    A model without an example gives ``[]`` (the contract test refuses that).
    """
    out: list[dict[str, Any]] = []
    for name, summary, instance in EXAMPLES.get(model, ()):
        payload = json.loads(encode(instance))
        out.append({"name": name, "summary": summary, "payload": payload})
    return out
