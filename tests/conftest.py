"""Shared fixtures: real Mosquitto brokers on free local ports (the simulator's launcher), and
a pseudo-terminal standing in for the label scanner's serial port."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.procs import MosquittoBroker

# Production is the gateway's default; the tests run it as dev unless they say otherwise
# (tests/security runs it as production). Gateway processes started here inherit it.
os.environ["RS_ENV"] = "dev"


#: the loggers ``gateway.security.logs.configure`` sets up (the root logger is ``""``)
CONFIGURED_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Give the loggers back their handlers, level and propagation as they were before.

    ``returns-gateway``'s ``main`` configures logging (``logs.configure``): one handler on
    the ``sys.stderr`` of that moment, which under pytest is the test's capture, closed
    when the test ends. Left installed, every later record at INFO, from any thread (paho's
    network thread, the bridge's announce loop of a later test's gateway), printed
    ``--- Logging error ---`` (ValueError: I/O operation on closed file).
    """
    saved = [
        (lg, list(lg.handlers), lg.level, lg.propagate)
        for lg in map(logging.getLogger, CONFIGURED_LOGGERS)
    ]
    try:
        yield
    finally:
        for lg, handlers, level, propagate in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Every test leaves logging configured as it found it (:func:`logging_restored`)."""
    with logging_restored():
        yield


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A private Mosquitto broker on a free port for the whole test session."""
    broker = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """Factory of brokers this test may stop and start again (same port, same sessions)."""
    started: list[MosquittoBroker] = []
    seq = itertools.count()

    def start(port: int | None = None) -> MosquittoBroker:
        broker = MosquittoBroker(tmp_path / f"mosquitto-{next(seq)}", port=port)
        broker.start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def scanner_pty() -> Iterator[str]:
    """The slave path of a fresh pseudo-terminal: the scanner port a station opens."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


@pytest.fixture
def started_daemon() -> Iterator[Callable[..., Any]]:
    """``started_daemon(config, before_start=None)``: a started StationDaemon on mock pins,
    stopped at the end of the test (``before_start(daemon)`` may drive pins first)."""
    from edge.daemon import StationDaemon

    made: list[StationDaemon] = []

    def build(config: Any, before_start: Callable[[StationDaemon], None] | None = None) -> Any:
        daemon = StationDaemon(config)
        made.append(daemon)
        if before_start is not None:
            before_start(daemon)
        daemon.start()
        return daemon

    try:
        yield build
    finally:
        for daemon in made:
            daemon.stop()
