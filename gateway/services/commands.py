"""Commands from the gateway to a station: send, record, follow the station's replies.

A lead sends a command (``POST /api/v1/stations/{station}/commands`` or the status page's
buttons); it is recorded (``state = "sent"``), published on the station's command topic
(:meth:`gateway.mqtt_bridge.MqttBridge.publish_command`) and its row follows the station's
replies (``accepted`` then ``done`` / ``failed`` with the reason, e.g. "emergency stop
engaged: release it before resuming"). The station refuses what is unsafe; the gateway only
bounds what it sends. The newest :data:`KEEP_PER_STATION` commands per station are kept.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.models import Station, StationCommand, utcnow
from protocol import CommandName, CommandReply

if TYPE_CHECKING:
    from gateway.mqtt_bridge import MqttBridge

__all__ = [
    "KEEP_PER_STATION",
    "OPERATOR_COMMANDS",
    "CommandRefused",
    "recent_commands",
    "record_reply",
    "send_command",
]

log = logging.getLogger(__name__)

KEEP_PER_STATION = 50
"""Commands (with their replies) kept per station; older ones are deleted on send."""

OPERATOR_COMMANDS: dict[str, str] = {
    CommandName.RESUME: "Resume",
    CommandName.PAUSE: "Pause belt",
    CommandName.RUN: "Run belt",
    CommandName.GATE_TEST: "Gate test",
    CommandName.RESYNC: "Resync RMAs",
    CommandName.RELOAD_POLICY: "Reload policy",
}
"""What a lead may send, with the label of its button."""

_ORDER = {"sent": 0, "accepted": 1, "done": 2, "failed": 2}


class CommandRefused(ValueError):
    """The gateway will not send this command (``status_code``: 404 unknown station, 422)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def _checked_args(command: str, args: dict[str, Any]) -> dict[str, str | int | float | bool]:
    if command != CommandName.GATE_TEST:
        if args:
            raise CommandRefused(422, f"{command} takes no arguments")
        return {}
    lane, pulse = args.get("lane"), args.get("pulse_ms", 300)
    if not isinstance(lane, str) or not 1 <= len(lane) <= 32:
        raise CommandRefused(422, "gate_test needs a lane (1..32 characters)")
    if isinstance(pulse, bool) or not isinstance(pulse, int) or not 50 <= pulse <= 5000:
        raise CommandRefused(422, "pulse_ms must be an integer 50..5000 (ms)")
    if set(args) - {"lane", "pulse_ms"}:
        raise CommandRefused(422, "gate_test takes lane and pulse_ms only")
    return {"lane": lane, "pulse_ms": pulse}


def send_command(
    session: Session,
    bridge: MqttBridge,
    station: str,
    command: str,
    args: dict[str, Any],
    actor: str,
    *,
    sites: frozenset[str] = frozenset(),
) -> StationCommand:
    """Record and publish one operator command to ``station``; commits.

    Args:
        session: the database session.
        bridge: publishes the command (the MQTT bridge).
        station: the station's id (must have reported).
        command: one of :data:`OPERATOR_COMMANDS`.
        args: ``{"lane": str, "pulse_ms": int 50..5000}`` for ``gate_test``, else empty.
        actor: who sent it (the audit log has the request too).
        sites: the sites the sender may use (empty: every site); another site's station
            is unknown to it (404). The command goes to the station's site's topic.

    Raises:
        CommandRefused: unknown station (404), unknown command or bad arguments (422).
    """
    if command not in OPERATOR_COMMANDS:
        raise CommandRefused(422, f"unknown command {command[:32]!r}")
    known = session.get(Station, station)
    if known is None or (sites and known.site not in sites):
        raise CommandRefused(404, f"unknown station {station[:64]!r}")
    site = known.site
    checked = _checked_args(command, args)
    row = StationCommand(
        request_id=uuid.uuid4().hex,
        station=station,
        command=command,
        args=checked,
        issued_by=actor[:128],
        state="sent",
        detail="",
        result={},
    )
    session.add(row)
    session.flush()
    keep = select(StationCommand.id).where(StationCommand.station == station)
    keep = keep.order_by(StationCommand.id.desc()).limit(KEEP_PER_STATION)
    session.execute(
        delete(StationCommand).where(
            StationCommand.station == station, StationCommand.id.not_in(keep.scalar_subquery())
        )
    )
    session.commit()
    bridge.publish_command(
        station, CommandName(command), checked, request_id=row.request_id, site=site
    )
    log.info("command sent station=%s command=%s by=%s", station, command, actor)
    return row


def record_reply(session: Session, reply: CommandReply) -> bool:
    """Follow a station's reply on its command's row; commits. False: not one of ours.

    A reply never moves a command back (a late ``accepted`` after ``done`` is ignored).
    Every gateway replica takes every reply (not a shared subscription): the row is read
    locked (``SELECT ... FOR UPDATE``, PostgreSQL; as committed, also when the session
    holds it), so replicas take turns and each compares with what the one before stored.
    """
    row = session.scalar(
        select(StationCommand)
        .where(StationCommand.request_id == reply.request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None or row.station != reply.station:
        return False
    if _ORDER[reply.state.value] <= _ORDER.get(row.state, 0):
        return True
    row.state = reply.state.value
    row.detail = reply.detail[:500]
    row.result = dict(reply.result)
    row.updated_at = utcnow()
    session.commit()
    return True


def recent_commands(session: Session, station: str, limit: int = 10) -> list[StationCommand]:
    """The newest ``limit`` commands sent to ``station``, newest first."""
    query = select(StationCommand).where(StationCommand.station == station)
    return list(session.scalars(query.order_by(StationCommand.id.desc()).limit(limit)))
