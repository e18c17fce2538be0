"""Shared fixtures: real Mosquitto brokers on free local ports.

- ``mqtt_broker`` (session): one broker for the whole run; ``.host``, ``.port``.
- ``mosquitto`` (function): a factory ``mosquitto(port=None) -> MosquittoProcess`` for tests
  that stop and restart a broker (outages); every broker it starts is stopped at teardown.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Broker:
    """Address of a running test broker."""

    host: str
    port: int


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto")
    if found:
        return found
    candidate = Path("/usr/sbin/mosquitto")
    if candidate.exists():
        return str(candidate)
    pytest.fail(
        "mosquitto not found (looked on PATH and /usr/sbin); "
        "install it with: sudo apt-get install -y mosquitto"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoProcess:
    """A mosquitto child process listening on ``host:port`` (anonymous, no persistence)."""

    def __init__(self, workdir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or _free_port()
        self.workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def broker(self) -> Broker:
        """The address as a :class:`Broker`."""
        return Broker(self.host, self.port)

    def start(self, timeout_s: float = 10.0) -> MosquittoProcess:
        """Start the broker and wait until it accepts connections."""
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n",
            encoding="utf-8",
        )
        with (self.workdir / f"mosquitto-{self.port}.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [_mosquitto_binary(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited early with status {self._proc.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"mosquitto did not accept connections on {self.host}:{self.port}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the broker (kill after 5 s); idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Start a private Mosquitto broker on a free port for the test session."""
    proc = MosquittoProcess(tmp_path_factory.mktemp("mosquitto")).start()
    try:
        yield proc.broker
    finally:
        proc.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Callable[..., MosquittoProcess]]:
    """Factory starting brokers this test may stop and restart (same port to come back)."""
    started: list[MosquittoProcess] = []

    def start(port: int | None = None) -> MosquittoProcess:
        proc = MosquittoProcess(tmp_path, port=port).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
