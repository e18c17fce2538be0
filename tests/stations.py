"""A small station config on mock pins, shared by the daemon tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def config_data(tmp_path: Path, scanner_url: str, **sections: Any) -> dict[str, Any]:
    """Station config data: gates restock (GPIO17, active high) and recycle (GPIO22, active
    low), photo-eye GPIO4, no broker; ``sections`` replace whole sections."""
    data: dict[str, Any] = {
        "station": {"id": "st1", "site": "s1", "data_dir": str(tmp_path / "data")},
        "mqtt": {"host": "127.0.0.1", "port": 1},  # nothing listens: the outbox keeps events
        "gpio": {"pin_factory": "mock"},
        "photo_eye": {"pin": 4},
        "scanner": {"url": scanner_url},
        "belt": {"speed_mm_s": 1000, "scan_pos_mm": 400, "length_mm": 3000},
        "lanes": [
            {"name": "restock", "disposition": "restock", "pos_mm": 1500, "gate_pin": 17},
            {
                "name": "recycle",
                "disposition": "recycle",
                "pos_mm": 2300,
                "gate_pin": 22,
                "active_high": False,
            },
        ],
    }
    data.update(sections)
    return data
