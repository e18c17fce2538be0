"""The station's OPC UA server (asyncua): its state for the plant's SCADA, and its commands.

Started by the daemon when the config has an ``[opcua]`` section
(:class:`edge.config.OpcuaSection`). Address space (namespace ``urn:returns-sorter:station``),
under ``Objects/Station``:

- ``BeltRunning``, ``Jammed``, ``Degraded`` (Boolean), ``OnBelt`` (UInt32: parcels tracked);
- ``Lanes/<lane>/Count`` (UInt64: parcels that left into it), ``Full`` and ``Faulted``
  (Boolean), for every lane of the config and ``quarantine``;
- ``Alarms`` (String array: the raised alarms, ``kind`` or ``kind:lane``);
- ``Devices/<device>`` (String: ``ok`` / ``failed``, the start-up health by device name);
- ``LastDecisions`` (String array, newest last: ``<parcel id> <lane> <reason>``).

Methods on ``Station``: ``Resume()``, ``Pause()``, ``GateTest(lane, pulse_ms)`` (returns the
ms from energising to the divert-confirm). Each goes through the same handler as the
MQTT command of that name (:class:`edge.station.commands.StationCommands`), so it has the
same safety refusals (a gate test with parcels on the belt, an unknown or broken gate...);
a refusal is the method's ``BadRequestNotAllowed`` status with the reason in the log and
in ``Station/LastRefusal``. Without a ``resume`` command handler the station resumes from
a jam as its operator button does; without a ``pause`` handler ``Pause`` is refused.

Security (OPC UA Part 2 and Part 4, §7.36-7.41): the only endpoint is Basic256Sha256 with
SignAndEncrypt; sessions authenticate with an X.509 user identity token whose certificate
is in ``trusted_clients``; anonymous sessions only when ``allow_anonymous``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import SimpleRoleRuleset
from asyncua.server.server import Server
from asyncua.server.user_managers import CertificateUserManager
from asyncua.ua.status_codes import StatusCodes

from edge.config import OpcuaSection
from edge.station.devices import DeviceHealth
from edge.station.inputs import Resume
from protocol import Command, CommandName

if TYPE_CHECKING:
    from edge.daemon import StationDaemon

__all__ = ["NAMESPACE", "StationOpcuaServer", "serve_opcua"]

log = logging.getLogger(__name__)

NAMESPACE = "urn:returns-sorter:station"
"""The namespace URI of the station's nodes."""
STRING = ua.VariantType.String
LAST_DECISIONS = 10
"""Decisions kept in ``LastDecisions``."""


class StationOpcuaServer:
    """The OPC UA server of one station, on its own thread and event loop.

    Args:
        daemon: the running station (status, inputs, command handlers).
        section: the ``[opcua]`` section.
    """

    def __init__(self, daemon: StationDaemon, section: OpcuaSection) -> None:
        self.daemon = daemon
        self.section = section
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._vars: dict[str, Node] = {}
        self.refusals = 0

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> None:
        """Start serving; returns once the endpoint listens.

        Raises:
            RuntimeError: when the server did not start (a certificate or key that cannot
                be read, an endpoint that cannot be bound; the cause chained).
        """
        self._thread = threading.Thread(target=self._run, name="opcua", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"OPC UA server did not start: {self._error}") from self._error
        log.info("OPC UA server on %s", self.section.endpoint)

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        stopping, thread = self._stopping, self._thread
        if stopping is not None and thread is not None and thread.is_alive():
            self._loop.call_soon_threadsafe(stopping.set)
            thread.join(10)
        self._thread = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            log.exception("OPC UA server failed")
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        users = CertificateUserManager()
        for i, path in enumerate(self.section.trusted_clients):
            await users.add_user(path, name=f"client{i}:{path.name}")
        # CertificateUserManager is a UserManager by shape, not by class
        server = Server(user_manager=users)  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(self.section.endpoint)
        server.set_server_name(f"returns-sorter station {self.daemon.config.station.id}")
        server.set_security_policy(
            [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt],
            SimpleRoleRuleset(),  # type: ignore[no-untyped-call]
        )
        tokens: list[type] = [ua.X509IdentityToken]
        if self.section.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        await server.load_certificate(str(self.section.certificate))
        await server.load_private_key(str(self.section.private_key))
        idx = await server.register_namespace(NAMESPACE)
        await self._build(server, idx)
        self._server = server
        async with server:
            self._ready.set()
            while not self._stopping.is_set():
                await self._refresh()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), timeout=self.section.update_ms / 1000.0
                    )

    # -- address space --------------------------------------------------------------------
    async def _build(self, server: Server, idx: int) -> None:
        station = await server.nodes.objects.add_object(idx, "Station")
        add = station.add_variable
        v = self._vars
        v["BeltRunning"] = await add(idx, "BeltRunning", True, ua.VariantType.Boolean)
        v["Jammed"] = await add(idx, "Jammed", False, ua.VariantType.Boolean)
        v["Degraded"] = await add(idx, "Degraded", False, ua.VariantType.Boolean)
        v["OnBelt"] = await add(idx, "OnBelt", 0, ua.VariantType.UInt32)
        v["Alarms"] = await add(idx, "Alarms", [], ua.VariantType.String)
        v["LastDecisions"] = await add(idx, "LastDecisions", [], ua.VariantType.String)
        v["LastRefusal"] = await add(idx, "LastRefusal", "", ua.VariantType.String)
        lanes = await station.add_folder(idx, "Lanes")
        for lane in [*(lane.name for lane in self.daemon.config.lanes), "quarantine"]:
            node = await lanes.add_object(idx, lane)
            v[f"{lane}.Count"] = await node.add_variable(idx, "Count", 0, ua.VariantType.UInt64)
            v[f"{lane}.Full"] = await node.add_variable(idx, "Full", False, ua.VariantType.Boolean)
            v[f"{lane}.Faulted"] = await node.add_variable(
                idx, "Faulted", False, ua.VariantType.Boolean
            )
        devices = await station.add_folder(idx, "Devices")
        for name in sorted(self.daemon.devices.health):
            v[f"device:{name}"] = await devices.add_variable(idx, name, "", ua.VariantType.String)
        await station.add_method(idx, "Resume", self._resume, [], [ua.VariantType.String])
        await station.add_method(idx, "Pause", self._pause, [], [ua.VariantType.String])
        await station.add_method(
            idx,
            "GateTest",
            self._gate_test,
            [ua.VariantType.String, ua.VariantType.Double],
            [ua.VariantType.Double],
        )

    def values(self) -> dict[str, tuple[object, ua.VariantType]]:
        """What the variables hold now, by key (from the station's status)."""
        status: dict[str, Any] = self.daemon.status()
        core: dict[str, Any] = status.get("core") or {}
        counts: dict[str, int] = core.get("lanes") or {}
        full = set(core.get("lanes_full") or ())
        faulted = set(core.get("lanes_faulted") or ())
        alarms: dict[str, object] = status.get("alarms") or {}
        out: dict[str, tuple[object, ua.VariantType]] = {
            "BeltRunning": (bool(status.get("belt_running")), ua.VariantType.Boolean),
            "Jammed": (bool(core.get("jammed")), ua.VariantType.Boolean),
            "Degraded": (bool(status.get("degraded")), ua.VariantType.Boolean),
            "OnBelt": (int(core.get("on_belt") or 0), ua.VariantType.UInt32),
            "Alarms": (sorted(str(k) for k in alarms), ua.VariantType.String),
            "LastDecisions": (
                [
                    f"{d.parcel_id} {d.lane.name} {d.reason.value}"
                    for d in list(self.daemon.decisions)[-LAST_DECISIONS:]
                ],
                ua.VariantType.String,
            ),
        }
        for lane in [*(lane.name for lane in self.daemon.config.lanes), "quarantine"]:
            out[f"{lane}.Count"] = (int(counts.get(lane, 0)), ua.VariantType.UInt64)
            out[f"{lane}.Full"] = (lane in full, ua.VariantType.Boolean)
            out[f"{lane}.Faulted"] = (lane in faulted, ua.VariantType.Boolean)
        devices: dict[str, Any] = status.get("devices") or {}
        for name, health in devices.items():
            state = health.get("state", "") if isinstance(health, dict) else ""
            out[f"device:{name}"] = (str(state), ua.VariantType.String)
        return out

    async def _refresh(self) -> None:
        for key, (value, vtype) in self.values().items():
            node = self._vars.get(key)
            if node is not None:
                await node.write_value(ua.Variant(value, vtype))

    # -- methods --------------------------------------------------------------------------
    def _command(self, name: CommandName, **args: str | int | float | bool) -> Command:
        return Command(
            request_id=f"opcua-{uuid.uuid4().hex[:16]}",
            command=name,
            issued_at=datetime.now(UTC),
            args=args,
        )

    async def _call(self, what: str, run: Callable[[], Any]) -> Any:
        """Run a command off the event loop; a refusal is the status BadRequestNotAllowed.

        (asyncua answers a method that raises with BadUnexpectedError: a refusal is
        returned as a :class:`ua.StatusCode` instead.)
        """
        try:
            return await asyncio.get_running_loop().run_in_executor(None, run)
        except (ValueError, KeyError, RuntimeError) as exc:
            self.refusals += 1
            reason = f"{what} refused: {exc}"
            log.warning("OPC UA %s", reason)
            await self._vars["LastRefusal"].write_value(ua.Variant(reason, ua.VariantType.String))
            return ua.StatusCode(ua.UInt32(StatusCodes.BadRequestNotAllowed))

    def _handler(self, name: str) -> Callable[[Command], Any] | None:
        try:
            command = CommandName(name)
        except ValueError:
            return None
        handler = self.daemon.commands.handlers().get(command)
        return None if handler is None else lambda cmd: handler(cmd)

    async def _resume(self, parent: ua.NodeId) -> list[ua.Variant] | ua.StatusCode:
        handler = self._handler("resume")

        def run() -> str:
            if handler is not None:
                handler(self._command(CommandName("resume")))
                return "resumed"
            core = self.daemon.status().get("core")
            if not (isinstance(core, dict) and core.get("jammed")):
                raise ValueError("the belt is not stopped by a jam")
            self.daemon.submit(Resume(self.daemon.clock()))
            return "resumed"

        result = await self._call("Resume", run)
        return result if isinstance(result, ua.StatusCode) else [ua.Variant(result, STRING)]

    async def _pause(self, parent: ua.NodeId) -> list[ua.Variant] | ua.StatusCode:
        handler = self._handler("pause")

        def run() -> str:
            if handler is None:
                raise ValueError("this station has no pause command")
            handler(self._command(CommandName("pause")))
            return "paused"

        result = await self._call("Pause", run)
        return result if isinstance(result, ua.StatusCode) else [ua.Variant(result, STRING)]

    async def _gate_test(
        self, parent: ua.NodeId, lane: ua.Variant, pulse_ms: ua.Variant
    ) -> list[ua.Variant] | ua.StatusCode:
        cmd = self._command(CommandName.GATE_TEST, lane=str(lane.Value), pulse_ms=pulse_ms.Value)
        result = await self._call("GateTest", lambda: self.daemon.commands.gate_test(cmd))
        if isinstance(result, ua.StatusCode):
            return result
        return [ua.Variant(float(result["confirmed_after_ms"]), ua.VariantType.Double)]


def serve_opcua(daemon: StationDaemon, section: OpcuaSection) -> StationOpcuaServer:
    """Start the station's OPC UA server and record it in ``daemon.devices.health["opcua"]``.

    A server that cannot start (see :meth:`StationOpcuaServer.start`) is logged and left
    ``failed`` in the health: the station sorts without it, visibly degraded. Never raises
    for that; returns the server either way (its ``stop`` is safe).
    """
    server = StationOpcuaServer(daemon, section)
    try:
        server.start()
        daemon.devices.health["opcua"] = DeviceHealth("ok", "asyncua", "serving")
    except RuntimeError as exc:
        log.error("OPC UA server not started: %s", exc)
        daemon.devices.health["opcua"] = DeviceHealth("failed", "asyncua", str(exc))
    return server


def self_signed_certificate(
    directory: Path, name: str, app_uri: str, *, server: bool
) -> tuple[Path, Path]:
    """Make a self-signed application certificate (DER) and key (PEM) in ``directory``.

    For tests and first set-up (``hardware/INSTALL.md`` uses the site's CA in production).
    Returns (certificate path, key path).
    """
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert, key = directory / f"{name}.der", directory / f"{name}.pem"
    use = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    asyncio.run(
        setup_self_signed_certificate(
            key, cert, app_uri, "localhost", use, {"commonName": f"returns-sorter {name}"}
        )
    )
    return cert, key
