"""A station process for fail-safe tests: ``python -m simulator.hw.station_child CONFIG MODE``.

Runs the real daemon entry point (:func:`edge.cli.main`) on the config's pins. Once the
station has started it energises every gate (as a divert in progress would), prints
``ENERGISED`` and then, by ``MODE``:

* ``wait``: waits for a signal (the test sends SIGTERM);
* ``crash``: raises an unhandled exception on the main thread.

Run with ``GPIOZERO_MOCK_PIN_CLASS=recording`` and ``RETURNS_SIM_PIN_LOG=<file>`` on a
``pin_factory = "mock"`` config to see the levels the process leaves on its pins
(:mod:`simulator.hw.pins`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from edge.cli import main
from edge.daemon import StationDaemon


def _energise_all(mode: str) -> Callable[[StationDaemon], None]:
    def hook(daemon: StationDaemon) -> None:
        for gate in daemon.devices.gates.values():
            gate.energise()
        print("ENERGISED", flush=True)
        if mode == "crash":
            raise RuntimeError("injected crash with gates energised")

    return hook


if __name__ == "__main__":
    config, mode = sys.argv[1], sys.argv[2]
    sys.exit(main(["--config", config, "--log-level", "WARNING"], on_started=_energise_all(mode)))
