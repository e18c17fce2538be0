"""AsyncAPI 2.6 document of the MQTT contract, generated from the message models.

``python -m protocol.asyncapi`` prints the YAML; ``--write`` updates the checked-in
``protocol/asyncapi.yaml``; ``--check`` exits 1 when that file is not current (CI runs it
through ``tests/link/test_contract.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from protocol.messages import (
    SCHEMA_VERSION,
    Command,
    CommandReply,
    ParcelEvent,
    PhotoUpload,
    RmaAnnouncement,
    RmaCancellation,
    StationStatus,
    SyncBatch,
    SyncRequest,
    Telemetry,
)
from protocol.policy import DispositionPolicy
from protocol.topics import ROOT, SHARE_GROUP

ASYNCAPI_PATH = Path(__file__).with_name("asyncapi.yaml")

# (channel, direction seen from the station, models, retained, qos, description)
_CHANNELS: list[tuple[str, str, list[type[BaseModel]], bool, int, str]] = [
    (
        "{site}/rma",
        "subscribe",
        [RmaAnnouncement, RmaCancellation],
        False,
        1,
        "RMA announcements and cancellations for every station of the site, each with the "
        "site-wide revision. Applied idempotently by (RMA, revision).",
    ),
    (
        "{site}/policy",
        "subscribe",
        [DispositionPolicy],
        True,
        1,
        "The site's disposition policy (versioned, retained): the station validates it "
        "against its fail-safe rules, caches it and records its version in every decision.",
    ),
    (
        "{site}/{station}/status",
        "publish",
        [StationStatus],
        True,
        1,
        "Birth (software version, config hash, applied revision) and last will `offline`.",
    ),
    (
        "{site}/{station}/event",
        "publish",
        [ParcelEvent],
        False,
        1,
        "Parcel events from the station's persistent outbox; ingested once by event_id. "
        f"Gateway replicas subscribe as `$share/{SHARE_GROUP}/...`.",
    ),
    (
        "{site}/{station}/photo",
        "publish",
        [PhotoUpload],
        False,
        1,
        "Parcel photo JPEGs (base64) from the outbox, sent before the event naming them by "
        "sha256; stored once by hash and served at `GET /api/v1/photos/{sha256}`.",
    ),
    (
        "{site}/{station}/telemetry",
        "publish",
        [Telemetry],
        False,
        0,
        "Periodic station metrics.",
    ),
    (
        "{site}/{station}/sync/req",
        "publish",
        [SyncRequest],
        False,
        1,
        "Catch-up request on every (re)connect: everything after the applied revision.",
    ),
    (
        "{site}/{station}/sync/resp",
        "subscribe",
        [SyncBatch],
        False,
        1,
        "Catch-up reply in batches; the last one has `last: true`.",
    ),
    (
        "{site}/{station}/cmd",
        "subscribe",
        [Command],
        False,
        1,
        "Commands; never retained (a retained command is not executed).",
    ),
    (
        "{site}/{station}/cmd/reply",
        "publish",
        [CommandReply],
        False,
        1,
        "Command replies: `accepted`, then `done` or `failed`, with the request id.",
    ),
]

_ALL_MODELS: list[type[BaseModel]] = [
    RmaAnnouncement,
    RmaCancellation,
    StationStatus,
    ParcelEvent,
    PhotoUpload,
    Telemetry,
    SyncRequest,
    SyncBatch,
    Command,
    CommandReply,
    DispositionPolicy,
]


def contract_version() -> int:
    """The contract's version: the newest schema version any message is written at."""
    versions = [getattr(m, "SCHEMA_VERSIONS", (SCHEMA_VERSION,))[-1] for m in _ALL_MODELS]
    return max(versions)


def build() -> dict[str, Any]:
    """Return the AsyncAPI document as a JSON-able dict (deterministic)."""
    _, defs = models_json_schema(
        [(m, "validation") for m in _ALL_MODELS], ref_template="#/components/schemas/{model}"
    )
    schemas = dict(sorted(defs.get("$defs", {}).items()))
    channels: dict[str, Any] = {}
    for name, direction, models, retained, qos, description in _CHANNELS:
        refs = [{"$ref": f"#/components/messages/{m.__name__}"} for m in models]
        message: dict[str, Any] = refs[0] if len(refs) == 1 else {"oneOf": refs}
        used = [p for p in ("site", "station") if "{" + p + "}" in name]
        channels[name] = {
            "description": description,
            "parameters": {
                p: {"description": f"{p} id", "schema": {"type": "string"}} for p in used
            },
            direction: {
                "operationId": f"{direction}_{name.replace('{', '').replace('}', '')}".replace(
                    "/", "_"
                ),
                "bindings": {"mqtt": {"qos": qos, "retain": retained}},
                "message": message,
            },
        }
    messages = {
        m.__name__: {
            "name": m.__name__,
            "contentType": "application/json",
            "summary": (m.__doc__ or "").strip().splitlines()[0],
            "payload": {"$ref": f"#/components/schemas/{m.__name__}"},
        }
        for m in _ALL_MODELS
    }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "returns-sorter station link",
            "version": f"{contract_version()}.0.0",
            "description": "MQTT contract between edge stations and the gateway. Operations "
            "are seen from the station: `publish` = the station sends. Generated from "
            "protocol/messages.py by `python -m protocol.asyncapi --write`; do not edit.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "site": {"url": "mqtt://localhost:1883", "protocol": "mqtt"},
            "site-tls": {"url": "mqtts://localhost:8883", "protocol": "secure-mqtt"},
        },
        "channels": {f"{ROOT}/{k}": v for k, v in channels.items()},
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> str:
    """Return the document as YAML text (what ``protocol/asyncapi.yaml`` holds)."""
    return yaml.safe_dump(build(), sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> int:
    """Print, write (``--write``) or check (``--check``) the AsyncAPI document."""
    parser = argparse.ArgumentParser(prog="python -m protocol.asyncapi")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {ASYNCAPI_PATH.name}")
    group.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        ASYNCAPI_PATH.write_text(text, encoding="utf-8")
    elif args.check:
        current = ASYNCAPI_PATH.read_text(encoding="utf-8") if ASYNCAPI_PATH.exists() else ""
        if current != text:
            print(f"{ASYNCAPI_PATH} is stale: run python -m protocol.asyncapi --write")
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
