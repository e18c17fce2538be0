"""The shipped site-to-central bridge forwards every station topic out and every gateway
topic in (issue 17 item 5), so nothing a station sends stays at its site.
"""

from __future__ import annotations

from pathlib import Path

from protocol import Topics
from simulator.procs import bridge_config

BRIDGE = Path(__file__).resolve().parents[2] / "hardware" / "bridge-site-to-central.conf"
STATION_TO_GATEWAY = ("status", "event", "photo", "telemetry", "sync_request", "command_reply")
GATEWAY_TO_STATION = ("rma", "head", "policy", "sync_response", "command")


def bridged(text: str) -> dict[str, tuple[str, int]]:
    """``topic pattern -> (direction, qos)`` of a bridge section."""
    lines = [line.split() for line in text.splitlines() if line.startswith("topic ")]
    return {parts[1]: (parts[2], int(parts[3])) for parts in lines}


def test_the_bridge_forwards_every_topic_of_the_protocol_in_its_direction() -> None:
    topics = bridged(BRIDGE.read_text(encoding="utf-8"))
    t = Topics("SITE_ID", "+")
    expected = {
        getattr(t, name): ("out", 0 if name == "telemetry" else 1) for name in STATION_TO_GATEWAY
    }
    expected |= {getattr(t, name): ("in", 1) for name in GATEWAY_TO_STATION}
    assert topics == expected
    every = {n for n in dir(Topics) if isinstance(getattr(Topics, n), property)}
    assert every == set(STATION_TO_GATEWAY) | set(GATEWAY_TO_STATION)  # none left out


def test_the_test_layout_bridges_the_shipped_topics_for_its_site() -> None:
    shipped = bridged(BRIDGE.read_text(encoding="utf-8"))
    ours = bridged(bridge_config("lyon", 1883))
    assert ours == {k.replace("SITE_ID", "lyon"): v for k, v in shipped.items()}
