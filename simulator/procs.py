"""Real processes the simulator and the tests run: a Mosquitto broker and the gateway."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess  # starts the broker, gateway and station of a run  # nosec B404
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    """Path of the mosquitto binary.

    Raises:
        FileNotFoundError: with the command that installs it.
    """
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        raise FileNotFoundError(
            "mosquitto not found; install it: sudo apt-get install -y mosquitto"
        )
    return found


class _Process:
    """A child process with a log file, stopped on exit of the context."""

    name = "process"
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Process:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the process and wait until it serves."""
        raise NotImplementedError

    def stop(self) -> None:
        """Terminate (then kill) the process."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL the process (a power cut, as far as it can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def _wait_port(self, port: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early ({self.proc.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on port {port} within {timeout_s} s")


class MosquittoBroker(_Process):
    """A private Mosquitto broker on a free port of 127.0.0.1.

    Args:
        workdir: folder for its config, log and persistence file.
        port: TCP port; a free one when None.
        extra_config: more ``mosquitto.conf`` lines, appended (e.g. a bridge section:
            :func:`bridge_config`).
    """

    name = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, extra_config: str = "") -> None:
        self.workdir = Path(workdir)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_config = extra_config

    def start(self) -> None:
        """Start the broker (persistence on, so restarts keep sessions) and wait for it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "max_queued_messages 100000\n"
            # the gateway acknowledges a batch after its commit: the broker must let a
            # whole batch be in flight to it (MqttBridge batch_max)
            "max_inflight_messages 1000\n"
            # As root, mosquitto drops to user "mosquitto", which cannot write the
            # persistence file here: sessions would be lost across a restart.
            f"{'user root' if os.geteuid() == 0 else ''}\n" + self.extra_config,
            encoding="utf-8",
        )
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(  # a fixed argv of our own executables, no shell  # nosec B603
            [mosquitto_binary(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        self._wait_port(self.port, 10)


def bridge_config(site: str, central_port: int, name: str | None = None) -> str:
    """The bridge section of a site broker forwarding ``site``'s topics to a local central one.

    The same topics, directions and QoS as ``hardware/bridge-site-to-central.conf`` (read
    from it, so the two never differ), without TLS or credentials: the central broker is
    on 127.0.0.1:``central_port``. ``name``: the connection name (default the site).
    """
    shipped = Path(__file__).resolve().parent.parent / "hardware" / "bridge-site-to-central.conf"
    topics = [
        line.replace("SITE_ID", site)
        for line in shipped.read_text(encoding="utf-8").splitlines()
        if line.startswith("topic ")
    ]
    conn = name or site
    return "\n".join(
        [
            f"connection central-{conn}",
            f"address 127.0.0.1:{central_port}",
            "bridge_protocol_version mqttv311",
            f"remote_clientid bridge-{conn}",
            f"local_clientid bridge-local-{conn}",
            "cleansession false",
            "start_type automatic",
            "restart_timeout 1 5",
            "try_private true",
            "bridge_max_packet_size 3145728",
            *topics,
            "",
        ]
    )


class GatewayProcess(_Process):
    """The gateway as a real process (uvicorn), on a free port.

    It runs as ``RS_ENV=dev`` (the simulator's and the demo's mode; production is the
    gateway's default) with a random secret key and bootstrap admin key per run, unless
    ``env`` says otherwise (the security tests run it as production).

    Args:
        workdir: folder for its SQLite database and log.
        mqtt_port: the broker it talks to (on 127.0.0.1).
        site: site id.
        port: HTTP port; a free one when None.
        env: extra ``RS_*`` variables, applied last (e.g. ``{"RS_ENV": "prod"}``).
    """

    name = "gateway"

    def __init__(
        self,
        workdir: Path,
        mqtt_port: int,
        site: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.mqtt_port = mqtt_port
        self.site = site
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = secrets.token_urlsafe(32)  # bootstrap admin key of this run
        self.secret_key = secrets.token_urlsafe(32)
        self.extra_env = dict(env or {})

    def start(self) -> None:
        """Start the gateway and wait until ``/healthz`` answers 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            RS_DATABASE_URL=f"sqlite:///{self.workdir / 'gateway.db'}",
            RS_PHOTO_DIR=str(self.workdir / "photos"),
            RS_MQTT_HOST="127.0.0.1",
            RS_MQTT_PORT=str(self.mqtt_port),
            RS_SITE=self.site,
            RS_BOOTSTRAP_API_KEY=self.api_key,
        )
        env.setdefault("RS_ENV", "dev")
        env.setdefault("RS_SECRET_KEY", self.secret_key)
        env.update(self.extra_env)
        log = (self.workdir / "gateway.log").open("ab")
        self.proc = subprocess.Popen(  # a fixed argv of our own executables, no shell  # nosec B603
            [sys.executable, "-m", "gateway.main", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._wait_port(self.port, 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway did not become healthy within 30 s")


SPIN_CODE = """
import os, sys, time
try:
    os.setpriority(os.PRIO_PROCESS, 0, int(sys.argv[1]))
except OSError:
    pass  # not allowed to lower it: stays at the parent's nice value
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pass
"""


class CpuLoad:
    """Bounded busy processes beside the station: ``count`` Python spin loops.

    Each runs at nice ``nice`` (absolute, when allowed) and ends by itself after ``max_s``
    seconds even if nobody stops it; :meth:`stop` kills them (idempotent). As a context
    manager it stops them on exit. :meth:`during_belt` is an ``on_progress`` callback for
    :meth:`simulator.harness.Run.execute` that loads the machine only while the parcels
    run (the set-up before it is not what is measured).

    Args:
        count: busy processes (default: one per CPU).
        nice: their nice value (0: the default priority of a user's process).
        max_s: the longest each may run, s.
    """

    def __init__(self, count: int | None = None, nice: int = 0, max_s: float = 120.0) -> None:
        self.count = count if count is not None else (os.cpu_count() or 1)
        self.nice = nice
        self.max_s = max_s
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start the busy processes (once)."""
        if self.procs:
            return
        args = [sys.executable, "-c", SPIN_CODE, str(self.nice), str(self.max_s)]
        # a fixed argv: this Python running our own spin code, no shell  # nosec B603
        self.procs = [subprocess.Popen(args) for _ in range(self.count)]  # nosec B603

    def stop(self) -> None:
        """Kill them and reap them."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        self.procs = []

    def during_belt(self, message: str) -> None:
        """``Run.execute`` progress: start with the parcels, stop when they are through."""
        if message.startswith("running"):
            self.start()
        elif message.startswith("waiting"):
            self.stop()

    def __enter__(self) -> CpuLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
