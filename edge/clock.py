"""Clocks of the shell: monotonic milliseconds for timing, UTC for records."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def monotonic_ms() -> float:
    """Monotonic time in milliseconds (float); only differences are meaningful."""
    return time.monotonic_ns() / 1e6


def utc_now() -> datetime:
    """Timezone-aware current UTC time, for records."""
    return datetime.now(UTC)
