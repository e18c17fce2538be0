"""Commands from the gateway that act on the station (the link's command thread runs them).

The link (:class:`edge.link.StationLink`) accepts a command, replies ``accepted``, runs its
handler and replies ``done`` with the handler's result, or ``failed`` with the message of
what it raised. A handler refuses an unsafe command by raising ``ValueError`` with the
reason, before anything moves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from edge.config import StationConfig
from edge.link import CommandHandler
from edge.sorter.model import Alarm
from edge.sorter.policy import Policy
from edge.station.gates import GateBank
from edge.station.inputs import ApplyPolicy, BeltHold, Resume, StationInput
from protocol import Command, CommandName

__all__ = ["StationCommands"]

log = logging.getLogger(__name__)

Result = dict[str, str | int | float | bool | None]


class StationCommands:
    """The station's command handlers.

    Args:
        config: the station config (lanes, confirm timeout).
        gates: the station's gates.
        has_input: True when the station has the named input (``<lane>.confirm``).
        parcels_on_belt: how many parcels the core tracks now.
        raise_alarm: hands an alarm to the reactor (thread-safe).
        clock: the station's monotonic ms clock.
        submit: hands an input to the reactor (thread-safe).
        estop_engaged: True while the emergency-stop input is engaged.
        load_policy: the disposition policy cached in the station store, or None.
    """

    def __init__(
        self,
        config: StationConfig,
        gates: GateBank,
        *,
        has_input: Callable[[str], bool],
        parcels_on_belt: Callable[[], int],
        raise_alarm: Callable[[Alarm], None],
        clock: Callable[[], float],
        submit: Callable[[StationInput], None],
        estop_engaged: Callable[[], bool],
        load_policy: Callable[[], Policy | None],
    ) -> None:
        self.config = config
        self.gates = gates
        self.has_input = has_input
        self.parcels_on_belt = parcels_on_belt
        self.raise_alarm = raise_alarm
        self.clock = clock
        self.submit = submit
        self.estop_engaged = estop_engaged
        self.load_policy = load_policy

    def handlers(self) -> Mapping[CommandName, CommandHandler]:
        """Handlers by command name, for the link (besides its own ``ping``, ``resync``...)."""
        return {
            CommandName.GATE_TEST: self.gate_test,
            CommandName.RESUME: self.resume,
            CommandName.PAUSE: self.pause,
            CommandName.RUN: self.run,
            CommandName.RELOAD_POLICY: self.reload_policy,
        }

    def _refuse_under_estop(self, what: str) -> None:
        if self.estop_engaged():
            raise ValueError(f"emergency stop engaged: release it before {what}")

    def resume(self, cmd: Command) -> Result:
        """``resume``: restart after a jam or an E-stop (as the reset button does).

        Returns ``{"resumed": True}`` once handed to the reactor (the status shows the belt).

        Raises:
            ValueError: refused while the emergency stop is engaged.
        """
        self._refuse_under_estop("resuming")
        self.submit(Resume(self.clock()))
        return {"resumed": True}

    def pause(self, cmd: Command) -> Result:
        """``pause``: the operator stops the belt; returns ``{"belt": "paused"}``.

        Parcels keep their place; diverts not yet finished are withdrawn to quarantine.
        """
        self.submit(BeltHold(self.clock(), "pause", True))
        return {"belt": "paused"}

    def run(self, cmd: Command) -> Result:
        """``run``: lift the operator's pause (a jam or E-stop still needs ``resume``).

        Returns ``{"belt": "run"}``.

        Raises:
            ValueError: refused while the emergency stop is engaged.
        """
        self._refuse_under_estop("running the belt")
        self.submit(BeltHold(self.clock(), "pause", False))
        return {"belt": "run"}

    def reload_policy(self, cmd: Command) -> Result:
        """``reload_policy``: apply the policy cached in the station store again.

        Returns ``{"policy_version": str}``.

        Raises:
            ValueError: no valid policy is cached (the default stays).
        """
        policy = self.load_policy()
        if policy is None:
            raise ValueError("no valid disposition policy cached at the station")
        self.submit(ApplyPolicy(policy))
        return {"policy_version": policy.version}

    def gate_test(self, cmd: Command) -> Result:
        """``gate_test``: pulse a lane's gate and report when its divert sensor confirmed.

        Args ``lane`` (required) and ``pulse_ms`` (default 300, 50..5000). The test is done
        only when the lane's divert-confirm sensor goes active within ``pulse_ms`` +
        ``belt.confirm_timeout_ms`` of the gate energising. Refused (ValueError: the reply
        is ``failed`` with the reason) for an unknown or broken gate, a lane without
        divert-confirm sensor, parcels on the belt (a test must never divert a real parcel)
        or a gate hold already active. The gate is energised through the hold mechanism
        of :class:`~edge.station.gates.GateBank` and released whatever happens.

        Returns:
            ``{"lane": str, "confirmed_after_ms": float}``.

        Raises:
            ValueError: refused, with the reason.
            RuntimeError: the divert was not confirmed in time (``divert_unconfirmed`` alarm).
        """
        lane = cmd.args.get("lane")
        if not isinstance(lane, str) or not lane:
            raise ValueError("gate_test needs a lane")
        pulse = cmd.args.get("pulse_ms", 300)
        if isinstance(pulse, bool) or not isinstance(pulse, int | float) or not 50 <= pulse <= 5000:
            raise ValueError(f"pulse_ms must be 50..5000, not {pulse!r}")
        if lane not in self.gates:
            known = any(cfg.name == lane for cfg in self.config.lanes)
            raise ValueError(
                f"gate of lane {lane} failed its self-test" if known else f"unknown lane {lane}"
            )
        if not self.has_input(f"{lane}.confirm"):
            raise ValueError(f"lane {lane} has no divert-confirm sensor")
        window_ms = float(pulse) + self.config.belt.confirm_timeout_ms

        def refuse() -> str | None:
            on_belt = self.parcels_on_belt()
            return (
                f"{on_belt} parcel(s) on the belt: a gate test could divert one"
                if on_belt
                else None
            )

        confirmed_after_ms = self.gates.test(lane, float(pulse), window_ms, refuse)
        if confirmed_after_ms is None:
            t_ms = self.clock()
            self.raise_alarm(Alarm("divert_unconfirmed", True, t_ms, lane))
            raise RuntimeError(f"divert not confirmed within {window_ms:g} ms")
        return {"lane": lane, "confirmed_after_ms": confirmed_after_ms}
