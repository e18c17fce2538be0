"""``/api/v1/stations/{station}/commands``: a lead sends, the station's replies are stored."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gateway.db import Database
from gateway.models import StationCommand
from gateway.services.commands import KEEP_PER_STATION, record_reply
from protocol import Command, CommandReply, CommandState, StationStatus, Topics, decode, encode
from tests.gateway.conftest import MqttProbe, pg_database

LEAD = ("lee", "a long lead password")
VIEWER = ("vera", "a long viewer password")


def users(client: TestClient) -> None:
    for (name, password), role in ((LEAD, "lead"), (VIEWER, "viewer")):
        body = {"username": name, "password": password, "role": role}
        assert client.post("/api/v1/users", json=body).status_code == 201


def test_a_lead_sends_a_command_and_sees_the_station_refuse_it(
    client: TestClient, probe: MqttProbe, site: str, wait: Any
) -> None:
    users(client)
    topics = Topics(site, "st1")
    probe.subscribe(topics.command)
    probe.publish(topics.status, encode(StationStatus(station="st1", state="online")))
    wait(lambda: client.get("/api/v1/stations").json()["stations"], what="station known")

    lead = {"X-API-Key": ""}
    r = client.post(
        "/api/v1/stations/st1/commands", json={"command": "resume"}, auth=LEAD, headers=lead
    )
    assert r.status_code == 202, r.text
    sent = r.json()
    assert (sent["command"], sent["state"], sent["issued_by"]) == ("resume", "sent", "user:lee")
    wait(lambda: probe.payloads(topics.command), what="command on the station's topic")
    cmd = decode(probe.payloads(topics.command)[0], Command)
    assert (cmd.request_id, cmd.command.value, cmd.args) == (sent["request_id"], "resume", {})

    for state, detail in (
        (CommandState.ACCEPTED, ""),
        (CommandState.FAILED, "emergency stop engaged: release it before resuming"),
        (CommandState.ACCEPTED, ""),  # a late duplicate never moves it back
    ):
        reply = CommandReply(
            request_id=cmd.request_id,
            station="st1",
            command=cmd.command,
            state=state,
            detail=detail,
        )
        probe.publish(topics.command_reply, encode(reply))
    wait(
        lambda: client.get("/api/v1/stations/st1/commands").json()[0]["state"] == "failed",
        what="the failed reply stored",
    )
    [row] = client.get("/api/v1/stations/st1/commands", auth=VIEWER, headers=lead).json()
    assert (row["state"], row["detail"]) == (
        "failed",
        "emergency stop engaged: release it before resuming",
    )

    # a viewer may read but not send; bad commands and unknown stations are refused
    r = client.post(
        "/api/v1/stations/st1/commands", json={"command": "pause"}, auth=VIEWER, headers=lead
    )
    assert r.status_code == 403
    assert client.post("/api/v1/stations/st1/commands", json={"command": "boom"}).status_code == 422
    bad_args = {"command": "gate_test", "args": {"lane": "restock", "pulse_ms": 9}}
    assert client.post("/api/v1/stations/st1/commands", json=bad_args).status_code == 422
    assert (
        client.post(
            "/api/v1/stations/st1/commands", json={"command": "run", "args": {"x": 1}}
        ).status_code
        == 422
    )
    assert client.post("/api/v1/stations/zz/commands", json={"command": "run"}).status_code == 404
    audit = client.get("/api/v1/audit").json()
    assert any(
        a["path"] == "/api/v1/stations/st1/commands" and a["principal"] == "user:lee" for a in audit
    )


def test_commands_are_bounded_per_station(
    client: TestClient, probe: MqttProbe, site: str, wait: Any
) -> None:
    probe.publish(Topics(site, "st1").status, encode(StationStatus(station="st1", state="online")))
    wait(lambda: client.get("/api/v1/stations").json()["stations"], what="station known")
    for _ in range(KEEP_PER_STATION + 3):
        assert (
            client.post("/api/v1/stations/st1/commands", json={"command": "pause"}).status_code
            == 202
        )
    rows = client.get("/api/v1/stations/st1/commands", params={"limit": 50}).json()
    assert len(rows) == KEEP_PER_STATION

    with client.app.state.db.session() as session:  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(StationCommand)) == KEEP_PER_STATION


def test_two_replicas_taking_a_commands_replies_never_move_it_back() -> None:
    # every replica takes every command reply (not a shared subscription). One stored
    # the station's `done` while the other, having read the row as `sent` before that
    # commit, then wrote its `accepted` over it: the command showed accepted for good
    # (found by reading the bridge). PostgreSQL only: SQLite has one gateway process.
    with pg_database() as url:
        db = Database(url)
        db.migrate()
        try:
            with db.session() as s:
                s.add(
                    StationCommand(
                        request_id="req-0001-abcd",
                        station="st1",
                        command="resume",
                        args={},
                        issued_by="user:lee",
                        state="sent",
                        detail="",
                        result={},
                    )
                )
                s.commit()

            def reply(state: CommandState) -> CommandReply:
                return CommandReply(
                    request_id="req-0001-abcd", station="st1", command="resume", state=state
                )

            done_read, release = threading.Event(), threading.Event()
            late = db.sessions()  # the replica with the `accepted`: it reads, then waits
            real_scalar = late.scalar

            def read_then_wait(*args: Any, **kwargs: Any) -> Any:
                result = real_scalar(*args, **kwargs)
                done_read.set()
                assert release.wait(10)
                return result

            late.scalar = read_then_wait  # type: ignore[method-assign]
            failed: list[BaseException] = []

            def accepted() -> None:
                try:
                    record_reply(late, reply(CommandState.ACCEPTED))
                except BaseException as exc:
                    failed.append(exc)

            slow = threading.Thread(target=accepted)
            slow.start()
            assert done_read.wait(10)
            late.scalar = real_scalar  # type: ignore[method-assign]
            with db.session() as s:  # the other replica, in the meantime: done
                done = threading.Thread(target=record_reply, args=(s, reply(CommandState.DONE)))
                done.start()
                done.join(0.5)  # committed now, or waiting for the slow one's lock
                release.set()
                slow.join(10)
                done.join(10)
            late.close()
            assert failed == []
            with db.session() as s:
                assert s.scalar(select(StationCommand.state)) == "done"
        finally:
            db.dispose()
