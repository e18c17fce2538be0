"""systemd notification protocol (sd_notify(3)) over the raw ``$NOTIFY_SOCKET`` datagram socket.

``READY=1`` once the station runs, ``WATCHDOG=1`` from the main loop (the unit's
``WatchdogSec`` restarts a daemon that stops sending it), ``STATUS=...`` for
``systemctl status`` and ``STOPPING=1`` on the way out. Without ``$NOTIFY_SOCKET`` (not run
by systemd, or ``Type=simple``) every call is a no-op.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_interval_s"]


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; returns False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the watchdog period systemd asked for (``$WATCHDOG_USEC``), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
