"""The wire contract: AsyncAPI document current, topics, message rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import yaml

from protocol import (
    Command,
    CommandName,
    ProtocolError,
    RmaAnnouncement,
    RmaCancellation,
    StationStatus,
    SyncBatch,
    Topics,
    asyncapi,
    decode,
    decode_rma_change,
    encode,
    shared,
)
from tests.link.conftest import ann


def test_asyncapi_document_is_current() -> None:
    assert asyncapi.ASYNCAPI_PATH.read_text(encoding="utf-8") == asyncapi.render(), (
        "protocol/asyncapi.yaml is stale: run python -m protocol.asyncapi --write"
    )
    assert asyncapi.main(["--check"]) == 0


def test_asyncapi_lists_every_topic_with_its_messages() -> None:
    doc = yaml.safe_load(asyncapi.render())
    assert doc["asyncapi"] == "3.0.0"
    addresses = {cid: ch["address"] for cid, ch in doc["channels"].items()}
    assert sorted(addresses.values()) == sorted(
        [
            "rs/v1/{site}/rma",
            "rs/v1/{site}/policy",
            "rs/v1/{site}/head",
            "rs/v1/{site}/{station}/status",
            "rs/v1/{site}/{station}/event",
            "rs/v1/{site}/{station}/photo",
            "rs/v1/{site}/{station}/telemetry",
            "rs/v1/{site}/{station}/sync/req",
            "rs/v1/{site}/{station}/sync/resp",
            "rs/v1/{site}/{station}/cmd",
            "rs/v1/{site}/{station}/cmd/reply",
        ]
    )
    ops = doc["operations"]
    cmd = ops["receiveCommand"]
    assert cmd["channel"] == {"$ref": "#/channels/command"}
    assert cmd["bindings"]["mqtt"] == {"qos": 1, "retain": False, "bindingVersion": "0.2.0"}
    rma = ops["receiveRma"]["messages"]
    assert [m["$ref"] for m in rma] == [
        "#/channels/rma/messages/RmaAnnouncement",
        "#/channels/rma/messages/RmaCancellation",
    ]
    assert ops["receivePolicy"]["bindings"]["mqtt"]["retain"] is True
    assert ops["receiveHead"]["bindings"]["mqtt"] == {
        "qos": 1,
        "retain": True,
        "bindingVersion": "0.2.0",
    }
    head = doc["components"]["schemas"]["HeadRevision"]["properties"]
    assert head["revision"]["maximum"] == 2**63 - 1
    assert head["site"]["pattern"] == r"^[^/+#\s]{1,64}$"
    assert ops["sendEvent"]["action"] == "send"
    assert ops["sendEvent"]["channel"] == {"$ref": "#/channels/event"}
    schema = doc["components"]["schemas"]["StationStatus"]["properties"]
    assert {"software_version", "config_hash", "schema_version"} <= set(schema)


def test_topic_tree_per_site_and_station() -> None:
    t = Topics("site1", "st7")
    assert (t.rma, t.status, t.event, t.telemetry) == (
        "rs/v1/site1/rma",
        "rs/v1/site1/st7/status",
        "rs/v1/site1/st7/event",
        "rs/v1/site1/st7/telemetry",
    )
    assert (t.sync_request, t.sync_response, t.command, t.command_reply) == (
        "rs/v1/site1/st7/sync/req",
        "rs/v1/site1/st7/sync/resp",
        "rs/v1/site1/st7/cmd",
        "rs/v1/site1/st7/cmd/reply",
    )
    assert Topics("site1").event == "rs/v1/site1/+/event"
    assert shared(Topics("site1").event) == "$share/gateways/rs/v1/site1/+/event"
    assert Topics.station_of("rs/v1/site1/st7/cmd/reply") == ("site1", "st7")
    for bad in ("", "a/b", "+", "#", " x"):
        with pytest.raises(ValueError):
            Topics(bad)
    with pytest.raises(ValueError):
        shared("rs/v1/x", "a/b")


def test_rma_topic_carries_announcements_and_cancellations() -> None:
    cancel = RmaCancellation(number="RMA-1", revision=4)
    assert decode_rma_change(encode(cancel)) == cancel
    assert decode_rma_change(encode(ann("RMA-1", 3))) == ann("RMA-1", 3)
    batch = SyncBatch(request_id="r", announcements=(ann("A", 1), cancel), head_revision=4)
    assert decode(encode(batch), SyncBatch).announcements[1] == cancel


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"rma":"RMA-1","lines":[', "invalid RmaChange"),
        (b"\xff\xfe", "invalid RmaChange"),
        (b"", "invalid RmaChange"),
        (b'{"kind":"rma_cancel","number":"X","revision":0}', "revision"),
        (b'{"kind":"rma_cancel","number":"X","revision":1,"schema_version":2}', "schema_version"),
        (b'{"kind":"status","station":"a","state":"online"}', "kind"),
    ],
)
def test_malformed_rma_payloads_raise_protocol_error_with_a_reason(
    payload: bytes, reason: str
) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_rma_change(payload)


def test_command_has_request_id_and_known_name() -> None:
    cmd = Command(
        request_id="abcdef0123",
        command=CommandName.PING,
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    raw = json.loads(encode(cmd))
    assert raw["kind"] == "command" and raw["schema_version"] == 1
    raw["command"] = "self_destruct"
    with pytest.raises(ProtocolError, match="command"):
        decode(json.dumps(raw), Command)


def test_announcement_model_is_unchanged_for_its_users() -> None:
    a = RmaAnnouncement.model_validate_json(encode(ann("R", 2, lines=2)))
    assert (a.kind, a.number, a.revision, len(a.lines)) == ("rma", "R", 2, 2)


def test_a_message_whose_text_holds_nul_is_refused_naming_the_field() -> None:
    # PostgreSQL cannot store NUL: an event carrying one failed its batch's set-based
    # ingest (every event of the batch then ingested one by one) and was dead-lettered
    # as poison; SQLite stored it. The protocol refuses it where it enters.
    cancel = json.loads(encode(RmaCancellation(number="RMA-1", revision=4)))
    bad = json.dumps({**cancel, "number": "RMA\u00001"})
    with pytest.raises(ProtocolError, match=r"^invalid RmaChange: number: NUL character"):
        decode_rma_change(bad)
    status = {"kind": "status", "station": "st1", "state": "online"}
    payload = json.dumps({**status, "software_version": "1.2\u0000"}).encode()
    with pytest.raises(
        ProtocolError, match=r"^invalid StationStatus: software_version: NUL character"
    ):
        decode(payload, StationStatus)
    # an escaped backslash followed by "u0000" is text, not a NUL
    text = json.dumps({**status, "software_version": "1.2\\u0000"})
    assert "\\\\u0000" in text
    assert decode(text, StationStatus).software_version == "1.2\\u0000"
