"""Issue 15, kind 1 (the station part): what a station sends is bounded and typed.

Every string, number, list and map of ``protocol/`` has bounds (finite floats); the station
status is a typed model (``StationHealth``) that the gateway validates, so a retained status
with malformed content is dead-lettered and never reaches the live page. Against the real
gateway process in production mode and a real broker.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from pydantic import BaseModel

import protocol.codes
import protocol.messages
import protocol.policy
from protocol import (
    Command,
    CommandReply,
    ParcelEvent,
    PhotoUpload,
    ProtocolError,
    RmaAnnouncement,
    RmaCancellation,
    StationHealth,
    StationStatus,
    SyncBatch,
    SyncRequest,
    Telemetry,
    Topics,
    decode,
    encode,
)
from protocol.policy import DispositionPolicy
from simulator.testing import wait_until
from tests.security.conftest import ProdGateway

WIRE = (
    RmaAnnouncement,
    RmaCancellation,
    StationStatus,
    ParcelEvent,
    PhotoUpload,
    SyncRequest,
    SyncBatch,
    Command,
    CommandReply,
    Telemetry,
    DispositionPolicy,
)


def _unbounded(schema: dict[str, Any], where: str, defs: dict[str, Any]) -> list[str]:
    """Every place of a JSON schema where a string, number, array or map has no bound."""
    found: list[str] = []
    if "$ref" in schema:
        return []  # each definition is walked once, from $defs
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key, ())):
            found += _unbounded(sub, f"{where}|{i}", defs)
    kind = schema.get("type")
    fixed = "enum" in schema or "const" in schema
    if kind == "string" and not fixed and schema.get("format") != "date-time":
        if "maxLength" not in schema:
            found.append(where)
    elif kind in ("integer", "number") and not fixed:
        if not ({"maximum", "exclusiveMaximum"} & schema.keys()) or not (
            {"minimum", "exclusiveMinimum"} & schema.keys()
        ):
            found.append(where)
    elif kind == "array":
        if "maxItems" not in schema:
            found.append(where)
        for i, sub in enumerate(schema.get("prefixItems", ())):
            found += _unbounded(sub, f"{where}[{i}]", defs)
        if isinstance(schema.get("items"), dict):
            found += _unbounded(schema["items"], f"{where}[]", defs)
    elif kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" not in schema:
                found.append(where)
            found += _unbounded(extra, f"{where}{{}}", defs)
            if isinstance(schema.get("propertyNames"), dict):
                found += _unbounded(schema["propertyNames"], f"{where}{{key}}", defs)
        for name, sub in schema.get("properties", {}).items():
            found += _unbounded(sub, f"{where}.{name}", defs)
    return found


@pytest.mark.parametrize("model", WIRE, ids=lambda m: m.__name__)
def test_every_field_on_the_wire_is_bounded(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    found = _unbounded(schema, model.__name__, defs)
    for name, sub in defs.items():
        found += _unbounded(sub, name, defs)
    assert found == []


def test_every_wire_model_refuses_nan_and_infinity() -> None:
    models = [
        cls
        for module in (protocol.messages, protocol.policy, protocol.codes)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseModel) and cls.__module__ == module.__name__
    ]
    assert len(models) >= 20
    assert [m.__name__ for m in models if m.model_config.get("allow_inf_nan") is not False] == []
    bad = b'{"kind": "telemetry", "station": "st1", "at": "2026-05-04T12:00:00Z", '
    for value in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(ProtocolError, match="finite"):
            decode(bad + b'"metrics": {"x": ' + value + b"}}", Telemetry)


def test_a_station_status_is_typed_and_v1_details_are_dropped_unread() -> None:
    v1 = {"kind": "status", "schema_version": 1, "station": "st1", "state": "online"}
    status = decode(json.dumps({**v1, "details": {"core": "x" * 10_000}}), StationStatus)
    assert status.health == StationHealth()
    too_many = {f"d{i}": {"state": "ok"} for i in range(65)}
    for health in (
        {"devices": too_many},
        {"devices": {"rfid": {"state": "failed", "detail": "x" * 501}}},
        {"core": {"lanes_full": "restock"}},
        {"core": {"lanes_full": ["restock"], "jammed": "yes", "extra": 1}},
        {"link": {"sync_lag": -1}},
    ):
        payload = json.dumps({**v1, "schema_version": 2, "health": health})
        with pytest.raises(ProtocolError):
            decode(payload, StationStatus)


def test_a_malformed_retained_status_is_dead_lettered_and_the_page_stays_live(
    prod: ProdGateway, site: str, publisher: mqtt.Client
) -> None:
    topic = Topics(site, "st7").status
    good = StationStatus(
        station="st7",
        state="degraded",
        software_version="1.0",
        health=StationHealth.model_validate({"devices": {"rfid": {"state": "failed"}}}),
    )
    publisher.publish(topic, encode(good), qos=1, retain=True).wait_for_publish(5)
    wait_until(
        lambda: prod.rows("select state from stations where id = 'st7'") == [("degraded",)],
        what="the good status stored",
    )
    bad = json.loads(encode(good))
    bad["health"]["core"] = {"lanes_full": {"restock": [1] * 10_000}}
    publisher.publish(topic, json.dumps(bad), qos=1, retain=True).wait_for_publish(5)
    wait_until(
        lambda: prod.rows(f"select error from dead_letters where topic = '{topic}'"),
        what="the malformed status dead-lettered",
    )
    [(error,)] = prod.rows(f"select error from dead_letters where topic = '{topic}'")
    assert error.startswith("invalid StationStatus: health.core.lanes_full")
    # the station keeps its last valid status; its alarm stands; the page renders
    [(details,)] = prod.rows("select details from stations where id = 'st7'")
    assert json.loads(details)["health"]["devices"] == {"rfid": {"state": "failed"}}
    assert prod.rows("select key from alarms where station = 'st7'") == [("st7:device_down:rfid",)]
    lee = prod.sign_in("lee", address="10.7.0.1")
    page = lee.get("/")
    assert page.status_code == 200 and 'data-station="st7"' in page.text
    publisher.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # clear it
