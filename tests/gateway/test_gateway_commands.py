"""``/api/v1/stations/{station}/commands``: a lead sends, the station's replies are stored."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gateway.models import StationCommand
from gateway.services.commands import KEEP_PER_STATION
from protocol import Command, CommandReply, CommandState, StationStatus, Topics, decode, encode
from tests.gateway.conftest import MqttProbe

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
