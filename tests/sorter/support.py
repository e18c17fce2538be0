"""Shared fixtures of the sorter-core tests: the demo belt and an in-memory RMA directory."""

from __future__ import annotations

from edge.sorter.model import BeltConfig, Disposition, LaneSpec, RmaLineRecord, RmaRecord

LANES = (
    LaneSpec("restock", Disposition.RESTOCK, 1500.0, "restock"),
    LaneSpec("refurbish", Disposition.REFURBISH, 2300.0, "refurbish"),
    LaneSpec("recycle", Disposition.RECYCLE, 3100.0, "recycle"),
    LaneSpec("quarantine", Disposition.QUARANTINE, 4000.0, None),
)


def belt(**overrides: object) -> BeltConfig:
    """The demo belt: 1 m/s, scan tunnel at 400 mm, gates at 1500 / 2300 / 3100 mm."""
    values: dict[str, object] = {
        "speed_mm_s": 1000.0,
        "scan_pos_mm": 400.0,
        "scan_tol_mm": 50.0,
        "lanes": LANES,
        "gate_stroke_ms": 60.0,
        "gate_margin_ms": 40.0,
        "debounce_ms": 5.0,
    }
    values.update(overrides)
    return BeltConfig(**values)  # type: ignore[arg-type]


def line(
    sku: str = "SKU-1",
    quantity: int = 1,
    *,
    gtin: str | None = None,
    serial: str | None = None,
    rfid_uid: str | None = None,
    category: str | None = None,
) -> RmaLineRecord:
    return RmaLineRecord(sku, quantity, gtin, serial, rfid_uid, category)


def rma(
    number: str,
    *lines: RmaLineRecord,
    state: str = "authorized",
    reason: str = "changed_mind",
) -> RmaRecord:
    return RmaRecord(number, state, 1, lines or (line(),), reason)


class Directory:
    """In-memory RmaDirectory + IdentifierDirectory."""

    def __init__(self, *rmas: RmaRecord) -> None:
        self.rmas = {r.number: r for r in rmas}
        self.lookups = 0

    def lookup_rma(self, number: str) -> RmaRecord | None:
        self.lookups += 1
        return self.rmas.get(number)

    def find_rmas(self, kind: str, value: str) -> tuple[str, ...]:
        return tuple(
            sorted(
                r.number
                for r in self.rmas.values()
                if any(getattr(ln, kind) == value for ln in r.lines)
            )
        )
