"""AsyncAPI 3.0 document of the MQTT contract, generated from the message models.

``python -m protocol.asyncapi`` prints the YAML; ``--write`` updates the checked-in
``protocol/asyncapi.yaml``; ``--check`` exits 1 when that file is not current (CI runs it
through ``tests/link/test_contract.py``; ``tests/link/test_asyncapi_valid.py`` runs the
AsyncAPI project's own parser, ``@asyncapi/parser`` 3.x, on it).

The document follows the AsyncAPI 3.0.0 specification (channels with an ``address``,
operations with an ``action`` seen from the station, messages and schemas in
``components``). It is generic over the models: the channel table below names the models
each topic carries; their JSON schemas come from pydantic and are turned into AsyncAPI
Schema objects (a JSON Schema draft-07 superset) by :func:`asyncapi_schema`, and their
examples are real encoded messages (:mod:`protocol.examples`). A model added to a channel
needs only an example.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic.json_schema import models_json_schema

from protocol.examples import wire_examples
from protocol.messages import (
    Command,
    CommandReply,
    HeadRevision,
    ParcelEvent,
    PhotoUpload,
    RmaAnnouncement,
    RmaCancellation,
    StationStatus,
    SyncBatch,
    SyncRequest,
    Telemetry,
    _Message,
)
from protocol.policy import DispositionPolicy
from protocol.topics import ROOT, SHARE_GROUP

ASYNCAPI_PATH = Path(__file__).with_name("asyncapi.yaml")
MQTT_BINDING_VERSION = "0.2.0"


@dataclass(frozen=True)
class Channel:
    """One topic of the contract.

    ``channel_id``: the AsyncAPI channel id (also names its operation); ``address``: the
    topic under ``rs/v1`` with ``{site}`` / ``{station}`` parameters; ``action``: what the
    station does (``send`` = publishes, ``receive`` = subscribes); ``models``: the messages
    the topic carries; ``retained`` / ``qos``: the MQTT publish flags.
    """

    channel_id: str
    address: str
    action: Literal["send", "receive"]
    models: tuple[type[_Message], ...]
    retained: bool
    qos: int
    description: str


CHANNELS: tuple[Channel, ...] = (
    Channel(
        "rma",
        "{site}/rma",
        "receive",
        (RmaAnnouncement, RmaCancellation),
        False,
        1,
        "RMA announcements and cancellations for every station of the site, each with the "
        "site-wide revision. Applied idempotently by (RMA, revision).",
    ),
    Channel(
        "policy",
        "{site}/policy",
        "receive",
        (DispositionPolicy,),
        True,
        1,
        "The site's disposition policy (versioned, retained): the station validates it "
        "against its fail-safe rules, caches it and records its version in every decision.",
    ),
    Channel(
        "head",
        "{site}/head",
        "receive",
        (HeadRevision,),
        True,
        1,
        "The site's head revision (retained), published after each announcement batch the "
        "broker acknowledged: a connected station holding less asks for catch-up.",
    ),
    Channel(
        "status",
        "{site}/{station}/status",
        "send",
        (StationStatus,),
        True,
        1,
        "Birth (software version, config hash, applied revision) and last will `offline`.",
    ),
    Channel(
        "event",
        "{site}/{station}/event",
        "send",
        (ParcelEvent,),
        False,
        1,
        "Parcel events from the station's persistent outbox; ingested once by event_id. "
        f"Gateway replicas subscribe as `$share/{SHARE_GROUP}/...`.",
    ),
    Channel(
        "photo",
        "{site}/{station}/photo",
        "send",
        (PhotoUpload,),
        False,
        1,
        "Parcel photo JPEGs (base64) from the outbox, sent before the event naming them by "
        "sha256; stored once by hash and served at `GET /api/v1/photos/{sha256}`.",
    ),
    Channel(
        "telemetry",
        "{site}/{station}/telemetry",
        "send",
        (Telemetry,),
        False,
        0,
        "Periodic station metrics.",
    ),
    Channel(
        "syncRequest",
        "{site}/{station}/sync/req",
        "send",
        (SyncRequest,),
        False,
        1,
        "Catch-up request on every (re)connect: everything after the applied revision.",
    ),
    Channel(
        "syncResponse",
        "{site}/{station}/sync/resp",
        "receive",
        (SyncBatch,),
        False,
        1,
        "Catch-up reply in batches; the last one has `last: true`.",
    ),
    Channel(
        "command",
        "{site}/{station}/cmd",
        "receive",
        (Command,),
        False,
        1,
        "Commands; never retained (a retained command is not executed).",
    ),
    Channel(
        "commandReply",
        "{site}/{station}/cmd/reply",
        "send",
        (CommandReply,),
        False,
        1,
        "Command replies: `accepted`, then `done` or `failed`, with the request id.",
    ),
)
"""Every topic of the contract (the document lists them in this order)."""


def contract_models() -> list[type[_Message]]:
    """Every message model the channels carry, once each, in channel order."""
    seen: dict[type[_Message], None] = {}
    for channel in CHANNELS:
        for model in channel.models:
            seen.setdefault(model, None)
    return list(seen)


def contract_version() -> int:
    """The contract's version: the newest schema version any message is written at."""
    return max(m.SCHEMA_VERSIONS[-1] for m in contract_models())


def asyncapi_schema(schema: Any) -> Any:
    """Turn a pydantic (JSON Schema 2020-12) schema into an AsyncAPI Schema object.

    The AsyncAPI Schema is a superset of JSON Schema draft-07 whose ``discriminator`` is
    the property's name (a string), where OpenAPI and pydantic write an object
    (``propertyName`` + ``mapping``); draft-07 writes tuples as an ``items`` array instead
    of 2020-12's ``prefixItems``. Walks the whole tree; returns a new value.
    """
    if isinstance(schema, list):
        return [asyncapi_schema(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "discriminator" and isinstance(value, dict):
            out[key] = value["propertyName"]
        elif key == "prefixItems":
            out["items"] = asyncapi_schema(value)
            if "items" in schema:
                out["additionalItems"] = asyncapi_schema(schema["items"])
        elif key == "items" and "prefixItems" in schema:
            continue
        elif key in ("properties", "patternProperties", "$defs", "definitions"):
            out[key] = {k: asyncapi_schema(v) for k, v in value.items()}
        else:
            out[key] = asyncapi_schema(value)
    return out


def _summary(model: type[_Message]) -> str:
    return (model.__doc__ or model.__name__).strip().splitlines()[0]


def build() -> dict[str, Any]:
    """Return the AsyncAPI 3.0 document as a JSON-able dict (deterministic)."""
    models = contract_models()
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    schemas = {k: asyncapi_schema(v) for k, v in sorted(defs.get("$defs", {}).items())}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for ch in CHANNELS:
        params = [p for p in ("site", "station") if "{" + p + "}" in ch.address]
        channels[ch.channel_id] = {
            "address": f"{ROOT}/{ch.address}",
            "title": ch.channel_id,
            "description": ch.description,
            "messages": {
                m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m in ch.models
            },
            "parameters": {p: {"description": f"{p} id"} for p in params},
        }
        op_id = ch.action + ch.channel_id[0].upper() + ch.channel_id[1:]
        operations[op_id] = {
            "action": ch.action,
            "channel": {"$ref": f"#/channels/{ch.channel_id}"},
            "summary": ch.description.split(". ")[0].rstrip("."),
            "messages": [
                {"$ref": f"#/channels/{ch.channel_id}/messages/{m.__name__}"} for m in ch.models
            ],
            "bindings": {
                "mqtt": {
                    "qos": ch.qos,
                    "retain": ch.retained,
                    "bindingVersion": MQTT_BINDING_VERSION,
                }
            },
        }
    messages = {
        m.__name__: {
            "name": m.__name__,
            "title": m.__name__,
            "summary": _summary(m),
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{m.__name__}"},
            "examples": wire_examples(m),
        }
        for m in models
    }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:returns-sorter:station-link",
        "info": {
            "title": "returns-sorter station link",
            "version": f"{contract_version()}.0.0",
            "description": "MQTT contract between edge stations and the gateway. Operations "
            "are seen from the station: `send` = the station publishes, `receive` = it "
            "subscribes. Generated from protocol/messages.py by `python -m protocol.asyncapi "
            "--write`; do not edit.",
            "contact": {"name": "returns-sorter maintainers"},
            "license": {
                "name": "Apache-2.0",
                "url": "https://www.apache.org/licenses/LICENSE-2.0",
            },
            "tags": [{"name": "station"}, {"name": "gateway"}, {"name": "mqtt"}],
        },
        "defaultContentType": "application/json",
        "servers": {
            "site": {
                "host": "localhost:1883",
                "protocol": "mqtt",
                "description": "The site's Mosquitto broker (per-station ACL).",
            },
            "site-tls": {
                "host": "localhost:8883",
                "protocol": "secure-mqtt",
                "description": "The same broker over TLS.",
            },
        },
        "channels": channels,
        "operations": operations,
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
