"""The station link through a real Mosquitto: C6, commands, outbox, birth."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge.store import StationStore
from protocol import (
    Command,
    CommandName,
    CommandReply,
    RmaCancellation,
    StationStatus,
    Topics,
    decode,
    encode,
)
from simulator.procs import free_port
from tests.cases import field_case
from tests.link.conftest import ann

pytestmark = pytest.mark.broker


def command(name: CommandName, **kwargs: Any) -> Command:
    kwargs.setdefault("issued_at", datetime.now(UTC))
    return Command(request_id=uuid.uuid4().hex, command=name, **kwargs)


def replies(probe: Any, topic: str) -> list[tuple[str, str, str]]:
    return [
        (r.request_id, r.state.value, r.detail)
        for r in (decode(p, CommandReply) for p in probe.payloads(topic))
    ]


def test_c6_truncated_json_is_dead_lettered_and_the_next_message_applied(
    make_link: Callable[..., Any], make_probe: Callable[..., Any], site: str, wait: Any
) -> None:
    case = field_case("C6_mqtt")[0]
    link = make_link()
    link.start()
    assert link.wait_connected(10)
    wait(lambda: link.counters["sync_requests"] >= 1, what="subscribed and sync asked")
    gateway = make_probe(name="gw")
    rma_topic = Topics(site).rma
    gateway.publish(rma_topic, case["payload_text"].encode())
    gateway.publish(rma_topic, encode(ann("RMA-1", 1)))
    wait(lambda: link.store.lookup_rma("RMA-1") is not None, what="valid RMA applied")
    [(topic, payload, error)] = link.store.dead_letters()
    assert (topic, payload) == (rma_topic, case["payload_text"].encode())
    assert error.startswith("invalid RmaChange")
    assert link.status()["connected"] is True and link.counters["dead_letters"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("revision", 2**63), ("revision", 10**30), ("line_no", 2**63)],
)
def test_unbounded_integer_on_rma_topic_is_dead_lettered_and_the_next_applied(
    make_link: Callable[..., Any],
    make_probe: Callable[..., Any],
    site: str,
    wait: Any,
    field: str,
    value: int,
) -> None:
    link = make_link()
    link.start()
    assert link.wait_connected(10)
    wait(lambda: link.counters["sync_requests"] >= 1, what="subscribed and sync asked")
    body = json.loads(encode(ann("RMA-BIG", 1)))
    if field == "line_no":
        body["lines"][0]["line_no"] = value
    else:
        body[field] = value
    poison = json.dumps(body).encode()
    gateway = make_probe(name="gw")
    rma_topic = Topics(site).rma
    gateway.publish(rma_topic, poison)
    gateway.publish(rma_topic, encode(ann("RMA-1", 1)))
    wait(lambda: link.store.lookup_rma("RMA-1") is not None, what="valid RMA applied")
    [(topic, payload, error)] = link.store.dead_letters()
    assert (topic, payload) == (rma_topic, poison)
    assert error.startswith("invalid RmaChange")
    assert field in error and "less than or equal to 9223372036854775807" in error
    assert link.store.lookup_rma("RMA-BIG") is None
    assert link.counters["dead_letters"] == 1


def test_any_error_while_applying_a_message_is_dead_lettered_with_its_text(
    make_link: Callable[..., Any],
    make_probe: Callable[..., Any],
    site: str,
    wait: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link = make_link()
    real_apply = link.store.apply_announcement

    def apply(change: Any) -> bool:
        if change.number == "RMA-POISON":
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return bool(real_apply(change))

    monkeypatch.setattr(link.store, "apply_announcement", apply)
    link.start()
    assert link.wait_connected(10)
    wait(lambda: link.counters["sync_requests"] >= 1, what="subscribed and sync asked")
    gateway = make_probe(name="gw")
    rma_topic = Topics(site).rma
    poison = encode(ann("RMA-POISON", 1))
    gateway.publish(rma_topic, poison)
    gateway.publish(rma_topic, encode(ann("RMA-1", 2)))
    wait(lambda: link.store.lookup_rma("RMA-1") is not None, what="valid RMA applied")
    assert link.store.dead_letters() == [
        (rma_topic, poison, "OverflowError: Python int too large to convert to SQLite INTEGER")
    ]
    assert link.counters["dead_letters"] == 1
    assert link.status()["connected"] is True


def test_c6_revision_two_twice_then_one_keeps_one_record_at_two(
    make_link: Callable[..., Any], make_probe: Callable[..., Any], site: str, wait: Any
) -> None:
    case = field_case("C6_mqtt")[1]
    link = make_link()
    link.start()
    assert link.wait_connected(10)
    wait(lambda: link.counters["sync_requests"] >= 1, what="subscribed")
    gateway = make_probe(name="gw")
    for m in case["sequence"]:
        gateway.publish(Topics(site).rma, encode(ann(m["rma"], m["rev"])))
    wait(lambda: link.counters["announcements"] == 3, what="three deliveries handled")
    assert link.store.rma_count() == case["expect"]["records"]
    record = link.store.lookup_rma("RMA-2")
    assert record is not None and record.revision == case["expect"]["rev"]
    assert link.counters["announcements_applied"] == 1


def test_cancellation_beats_older_announcement_and_loses_to_newer(
    make_link: Callable[..., Any], make_probe: Callable[..., Any], site: str, wait: Any
) -> None:
    link = make_link()
    link.start()
    assert link.wait_connected(10)
    wait(lambda: link.counters["sync_requests"] >= 1, what="subscribed")
    gateway = make_probe(name="gw")
    topic = Topics(site).rma
    gateway.publish(topic, encode(ann("R1", 1)))
    gateway.publish(topic, encode(RmaCancellation(number="R1", revision=2)))
    gateway.publish(topic, encode(ann("R1", 1)))  # late redelivery: ignored
    gateway.publish(topic, encode(RmaCancellation(number="R9", revision=3)))  # unknown RMA
    gateway.publish(topic, encode(ann("R9", 2)))  # older than its cancellation
    wait(lambda: link.counters["announcements"] == 5, what="five deliveries handled")
    r1, r9 = link.store.lookup_rma("R1"), link.store.lookup_rma("R9")
    assert r1 is not None and (r1.state, r1.revision, len(r1.lines)) == ("cancelled", 2, 1)
    assert r9 is not None and (r9.state, r9.revision, r9.lines) == ("cancelled", 3, ())
    gateway.publish(topic, encode(ann("R1", 4)))  # re-authorised later
    wait(lambda: link.store.lookup_rma("R1").state == "authorized", what="re-authorised")


def test_c6_retained_command_on_start_is_not_executed_but_a_live_one_is(
    make_link: Callable[..., Any], make_probe: Callable[..., Any], site: str, wait: Any
) -> None:
    topics = Topics(site, "st1")
    gateway = make_probe(name="gw")
    gateway.subscribe(topics.command_reply)
    stale = command(CommandName.PING)
    gateway.publish(topics.command, encode(stale), retain=True)
    link = make_link()
    link.start()
    wait(lambda: link.counters["dead_letters"] == 1, what="retained command refused")
    [(topic, payload, error)] = link.store.dead_letters()
    assert (topic, payload, error) == (
        topics.command,
        encode(stale),
        "retained command not executed",
    )
    live = command(CommandName.PING)
    gateway.publish(topics.command, encode(live))
    wait(lambda: len(gateway.payloads(topics.command_reply)) == 2, what="two replies")
    assert replies(gateway, topics.command_reply) == [
        (live.request_id, "accepted", ""),
        (live.request_id, "done", ""),
    ]
    assert link.counters["commands"] == 1
    gateway.publish(topics.command, b"", retain=True)  # clear the retained one


def test_unsupported_failing_and_expired_commands(
    make_link: Callable[..., Any], make_probe: Callable[..., Any], site: str, wait: Any
) -> None:
    topics = Topics(site, "st1")

    def gate_test(cmd: Command) -> dict[str, Any]:
        raise RuntimeError(f"divert sensor did not confirm lane {cmd.args['lane']}")

    link = make_link(command_handlers={CommandName.GATE_TEST: gate_test})
    link.start()
    assert link.wait_connected(10)
    wait(lambda: link.counters["sync_requests"] >= 1, what="subscribed")
    gateway = make_probe(name="gw")
    gateway.subscribe(topics.command_reply)
    expired = command(
        CommandName.PING, issued_at=datetime.now(UTC) - timedelta(hours=1), expires_in_s=60
    )
    failing = command(CommandName.GATE_TEST, args={"lane": "restock"})
    resync = command(CommandName.RESYNC)
    for cmd in (expired, failing, resync):
        gateway.publish(topics.command, encode(cmd))
    wait(lambda: len(gateway.payloads(topics.command_reply)) == 4, what="four replies")
    assert replies(gateway, topics.command_reply) == [
        (failing.request_id, "accepted", ""),
        (failing.request_id, "failed", "divert sensor did not confirm lane restock"),
        (resync.request_id, "accepted", ""),
        (resync.request_id, "done", ""),
    ]
    [(_, _, error)] = link.store.dead_letters()
    assert error.startswith(f"command {expired.request_id} expired")


def test_birth_carries_version_and_config_hash_and_will_says_offline(
    make_link: Callable[..., Any], make_probe: Callable[..., Any], site: str, wait: Any
) -> None:
    topics = Topics(site, "st1")
    gateway = make_probe(name="gw")
    gateway.subscribe(topics.status)
    link = make_link(software_version="1.2.3", config_hash="abc123")
    link.start()
    [birth] = wait(lambda: gateway.payloads(topics.status)[:1], what="birth")
    status = decode(birth, StationStatus)
    assert (status.state, status.software_version, status.config_hash) == (
        "online",
        "1.2.3",
        "abc123",
    )
    assert status.health.link is not None and status.health.link.sync_lag == 0
    link.stop()
    last = wait(
        lambda: [p for p in gateway.payloads(topics.status) if b'"offline"' in p],
        what="offline status",
    )
    assert decode(last[-1], StationStatus).config_hash == "abc123"


def test_unacknowledged_events_survive_a_station_restart(
    tmp_path: Path,
    mosquitto: Callable[..., Any],
    make_link: Callable[..., Any],
    make_probe: Callable[..., Any],
    site: str,
    wait: Any,
) -> None:
    port = free_port()  # no broker yet: nothing can be acknowledged
    store_path = tmp_path / "station.db"
    first = make_link(port=port, store=StationStore(store_path))
    first.start()
    ids = [first.publish_event(json.dumps({"n": n}).encode()) for n in range(5)]
    assert first.store.outbox_depth() == 5
    first.stop()
    first.store.close()

    mosquitto(port=port)
    gateway = make_probe(name="gw", port=port)
    event_topic = Topics(site, "st1").event
    gateway.subscribe(event_topic)
    second = make_link(port=port, store=StationStore(store_path))
    second.start()
    wait(lambda: len(gateway.payloads(event_topic)) == 5, what="five events after restart")
    wait(lambda: second.store.outbox_depth() == 0, what="outbox drained by PUBACKs")
    assert [json.loads(p)["n"] for p in gateway.payloads(event_topic)] == [0, 1, 2, 3, 4]
    assert ids == [1, 2, 3, 4, 5]
    assert second.counters["acked"] == 5


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_supervisor_restarts_a_dead_network_thread(
    make_link: Callable[..., Any], make_probe: Callable[..., Any], site: str, wait: Any
) -> None:
    link = make_link()
    link.start()
    assert link.wait_connected(10)
    wait(lambda: link.counters["sync_requests"] >= 1, what="subscribed")
    guarded = link._client.on_message

    def explode(*_args: Any) -> None:  # an unguarded failure inside paho's thread
        link._client.on_message = guarded
        raise RuntimeError("boom")

    link._client.on_message = explode
    gateway = make_probe(name="gw")
    gateway.publish(Topics(site).rma, encode(ann("LOST-IN-CRASH", 1)))
    wait(lambda: link.counters["loop_restarts"] == 1, what="network thread restarted")
    gateway.publish(Topics(site).rma, encode(ann("AFTER", 2)))
    wait(lambda: link.store.lookup_rma("AFTER") is not None, what="link applies again")
    assert link.status()["connected"] is True
