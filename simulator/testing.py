"""One test kit for tests, benchmarks and the simulator: the fakes nobody writes twice.

* RMA directory: :class:`Directory` (in-memory ``RmaDirectory`` and
  ``IdentifierDirectory``), built from :func:`rma` and :func:`line` records; an RMA as the
  gateway announces it: :func:`announcement`.
* Policy: :data:`CHEAP_GOODS`, the explicit rule trusting the label of cheap lines without
  identifiers, and :func:`label_trusting_policy` (tests of tracking and timing, whose
  parcels show only their label; the shipped policy would inspect them all).
* Time: :class:`ManualClock`, a monotonic-ms clock the test sets (thread-safe).
* Belts: :data:`DEMO_LANES` and :func:`demo_belt`, the demo geometry the core computes with.
* Waiting: :func:`wait_until`, polling a predicate with a deadline.
* Stations: :func:`station_config_data` / :func:`station_config`, a small station on
  gpiozero mock pins with no broker; :func:`video_camera`, its camera on a video file.
* Gateway: :func:`start_bridge`, a started gateway MQTT bridge on a test broker.

Only the lowest layer is faked here (a directory, a clock); everything else is the real code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edge.config import StationConfig
from edge.sorter.model import BeltConfig, Disposition, LaneSpec, RmaLineRecord, RmaRecord
from edge.sorter.policy import (
    LINES_WITHOUT_IDENTIFIERS,
    TRUST_LABEL,
    Policy,
    VerificationRule,
    default_policy,
)
from protocol import RmaAnnouncement, RmaLine
from protocol.messages import RmaState

if TYPE_CHECKING:
    from gateway.mqtt_bridge import MqttBridge

__all__ = [
    "CHEAP_GOODS",
    "CHEAP_UNIT_CENTS",
    "DEMO_LANES",
    "Directory",
    "ManualClock",
    "WaitTimeout",
    "announcement",
    "demo_belt",
    "label_trusting_policy",
    "label_trusting_policy_payload",
    "line",
    "rma",
    "start_bridge",
    "station_config",
    "station_config_data",
    "video_camera",
    "wait_until",
]

T = TypeVar("T")

# -- RMA directory ----------------------------------------------------------------------------


CHEAP_UNIT_CENTS = 990
"""What one unit of a :func:`line` is worth unless told (9.90, minor currency units)."""

CHEAP_GOODS = VerificationRule(
    TRUST_LABEL,
    lines=LINES_WITHOUT_IDENTIFIERS,
    max_unit_value_cents=2000,
    note="cheap goods without identifiers, up to 20.00: label trusted",
)
"""An explicit trust rule: the label stands for a line that declares no identifier and
whose unit is worth at most 2000 minor units."""


def label_trusting_policy(
    recalled_skus: tuple[str, ...] = (), version: str = "default-1"
) -> Policy:
    """The shipped policy with the :data:`CHEAP_GOODS` verification rule."""
    return default_policy(recalled_skus, version=version, verification=(CHEAP_GOODS,))


def label_trusting_policy_payload(version: str = "trusting-1") -> str:
    """:func:`label_trusting_policy` as the gateway pushes it (``DispositionPolicy`` JSON).

    For daemon tests: ``daemon.apply_policy(label_trusting_policy_payload())`` before
    ``start()`` caches it, so the station starts with it.
    """
    from edge.sorter.policy import policy_to_mapping
    from protocol.policy import DispositionPolicy

    wire = DispositionPolicy.model_validate(
        policy_to_mapping(label_trusting_policy(version=version))
    )
    return wire.model_dump_json()


def line(
    sku: str = "SKU-1",
    quantity: int = 1,
    *,
    gtin: str | None = None,
    serial: str | None = None,
    rfid_uid: str | None = None,
    category: str | None = None,
    unit_value_cents: int | None = CHEAP_UNIT_CENTS,
) -> RmaLineRecord:
    """An RMA line as the station caches it (identifiers already canonical; minor units)."""
    return RmaLineRecord(
        sku, quantity, gtin, serial, rfid_uid, category, unit_value_cents=unit_value_cents
    )


def rma(
    number: str,
    *lines: RmaLineRecord,
    state: str = "authorized",
    reason: str | None = "changed_mind",
    revision: int = 1,
    tracking_number: str | None = None,
) -> RmaRecord:
    """An RMA record; without ``lines`` one line of one ``SKU-1``."""
    return RmaRecord(number, state, revision, lines or (line(),), reason, tracking_number)


def announcement(
    number: str,
    *lines: RmaLine,
    revision: int = 1,
    state: str = "authorized",
    reason: str = "size",
    tracking_number: str | None = None,
) -> RmaAnnouncement:
    """An RMA announcement as the gateway sends it (with the parcel's carrier tracking).

    Without ``lines``: one line of ``SKU-1`` worth :data:`CHEAP_UNIT_CENTS` (as :func:`line`).
    """
    return RmaAnnouncement(
        tracking_number=tracking_number,
        number=number,
        revision=revision,
        order_ref=f"O-{number}",
        reason=reason,
        resolution="refund",
        state=RmaState(state),
        lines=lines
        or (RmaLine(line_no=1, sku="SKU-1", quantity=1, unit_value_cents=CHEAP_UNIT_CENTS),),
    )


class Directory:
    """In-memory RMA directory: ``lookup_rma`` by number, ``find_rmas`` by line identifier.

    ``lookups`` counts ``lookup_rma`` calls (the core must not query the cache per read).
    """

    def __init__(self, *rmas: RmaRecord) -> None:
        self.rmas = {r.number: r for r in rmas}
        self.lookups = 0

    @classmethod
    def of_numbers(cls, numbers: list[str]) -> Directory:
        """A directory of one-line authorized RMAs with these numbers."""
        return cls(*(rma(n) for n in numbers))

    def lookup_rma(self, number: str) -> RmaRecord | None:
        """The RMA with this number, or None."""
        self.lookups += 1
        return self.rmas.get(number)

    def find_rmas(self, kind: str, value: str) -> tuple[str, ...]:
        """Numbers of the RMAs with a line whose ``kind`` (``rfid_uid``, ``serial``) = ``value``.

        ``tracking``: the RMAs whose carrier tracking number is ``value``.
        """
        if kind == "tracking":
            return tuple(sorted(n for n, r in self.rmas.items() if r.tracking_number == value))
        return tuple(
            sorted(
                r.number
                for r in self.rmas.values()
                if any(getattr(ln, kind) == value for ln in r.lines)
            )
        )


# -- time -------------------------------------------------------------------------------------


class SteppableWall:
    """A fake system (wall) clock that can be stepped the way NTP steps a real one.

    Callable like :func:`edge.clock.utc_now`: the real UTC now plus the steps so far; give
    it to :class:`edge.clock.UtcClock` (``utc=`` or :meth:`~edge.clock.UtcClock.set_wall`) and
    :meth:`step` it: the station finds the step at its next check, as on a real Pi.
    """

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        """The (stepped) UTC wall time now."""
        return datetime.now(UTC) + self.offset

    def step(self, seconds: float) -> None:
        """Jump the wall clock by ``seconds`` (either way)."""
        self.offset += timedelta(seconds=seconds)


class ManualClock:
    """Monotonic milliseconds the test sets: edges get exact times whatever the machine load.

    Callable like :func:`edge.clock.monotonic_ms`; thread-safe (drivers stamp on their own
    threads while the test moves time).

    Args:
        t_ms: the time at start, ms.
    """

    def __init__(self, t_ms: float = 0.0) -> None:
        self._t_ms = float(t_ms)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """The current time, ms."""
        with self._lock:
            return self._t_ms

    def set(self, t_ms: float) -> None:
        """Jump to ``t_ms`` (ms)."""
        with self._lock:
            self._t_ms = float(t_ms)

    def advance(self, ms: float) -> float:
        """Move time on by ``ms``; returns the new time, ms."""
        with self._lock:
            self._t_ms += ms
            return self._t_ms


# -- belts ------------------------------------------------------------------------------------

DEMO_LANES = (
    LaneSpec("restock", Disposition.RESTOCK, 1500.0, "restock"),
    LaneSpec("refurbish", Disposition.REFURBISH, 2300.0, "refurbish"),
    LaneSpec("recycle", Disposition.RECYCLE, 3100.0, "recycle"),
    LaneSpec("quarantine", Disposition.QUARANTINE, 4000.0, None),
)
"""The demo's lanes: gates at 1500 / 2300 / 3100 mm, quarantine at the belt end (4000 mm)."""


def demo_belt(**overrides: Any) -> BeltConfig:
    """The demo belt; keyword arguments replace fields.

    1 m/s, scan tunnel at 400 mm ± 50, gate stroke 60 ms, margin 40 ms, debounce 5 ms,
    :data:`DEMO_LANES`.
    """
    values: dict[str, Any] = {
        "speed_mm_s": 1000.0,
        "scan_pos_mm": 400.0,
        "scan_tol_mm": 50.0,
        "lanes": DEMO_LANES,
        "gate_stroke_ms": 60.0,
        "gate_margin_ms": 40.0,
        "debounce_ms": 5.0,
    }
    values.update(overrides)
    return BeltConfig(**values)


# -- waiting ----------------------------------------------------------------------------------


class WaitTimeout(AssertionError, TimeoutError):
    """:func:`wait_until` ran out of time (a failed assertion in tests, a timeout elsewhere)."""


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout_s: float = 10.0,
    what: str = "condition",
    poll_s: float = 0.01,
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises:
        WaitTimeout: after ``timeout_s`` real seconds, naming ``what``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(poll_s)


# -- stations ---------------------------------------------------------------------------------


def station_config_data(data_dir: Path, scanner_url: str, **sections: Any) -> dict[str, Any]:
    """Station config data on mock pins, no broker (MQTT port 1: the outbox keeps events).

    Gates restock (GPIO17, active high, at 1500 mm) and recycle (GPIO22, active low, at
    2300 mm), photo-eye GPIO4, belt 1 m/s with the scan tunnel at 400 mm and its end at
    3000 mm; the database lives in ``data_dir / "data"``. ``sections`` replace whole
    sections (e.g. ``rfid={...}``, ``lanes=[...]``).
    """
    data: dict[str, Any] = {
        "station": {"id": "st1", "site": "s1", "data_dir": str(data_dir / "data")},
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


def video_camera(source: Path, **keys: Any) -> dict[str, Any]:
    """A ``[camera]`` section reading a video file (OpenCV, ffmpeg), fresh frames by read time.

    One frame flushed per trigger; ``keys`` add or replace keys (``trigger_delay_ms=150``).
    """
    section: dict[str, Any] = {
        "backend": "opencv",
        "source": str(source),
        "api": "ffmpeg",
        "timestamps": "read",
        "flush_frames": 1,
    }
    section.update(keys)
    return section


def station_config(data_dir: Path, scanner_url: str, **sections: Any) -> StationConfig:
    """:func:`station_config_data`, validated."""
    return StationConfig.model_validate(station_config_data(data_dir, scanner_url, **sections))


# -- gateway ----------------------------------------------------------------------------------


def start_bridge(host: str, port: int, site: str, sessions: Any, **kwargs: Any) -> MqttBridge:
    """A started gateway MQTT bridge, subscribed (the caller stops it).

    Raises:
        WaitTimeout: when it did not subscribe within 10 s.
    """
    from gateway.mqtt_bridge import MqttBridge

    bridge = MqttBridge(host=host, port=port, site=site, sessions=sessions, **kwargs)
    bridge.start()
    if not bridge.wait_ready(10):
        bridge.stop()
        raise WaitTimeout("bridge did not subscribe")
    return bridge
