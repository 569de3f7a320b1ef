"""inferq parts as real processes, for tests that kill, stop and restart them.

`Supervisor` starts `python -m inferq ...` with its settings in `INFERQ_*` variables and
its output in a log file, and stops every process it started when it closes (SIGTERM,
then SIGKILL after a grace period, their children too), however the test ended.
`ResultsWatcher` reads the results topic from its beginning, outside any consumer group,
and counts the terminal events of each job and of each worker, so a test can act on
progress (kill a worker once it has served some jobs) and count duplicates afterwards.
"""

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from inferq.devbroker import free_port
from inferq.gaps import GapGuard
from tests.support import GROUP_TIMEOUTS, TERMINAL, eventually

T = TypeVar("T")

INFERQ = [sys.executable, "-m", "inferq"]
READY_WITHIN_S = 60.0  # start-up: imports, models, topics, group joins on a busy machine
STOP_GRACE_S = 15.0  # teardown: how long a SIGTERMed process may drain before SIGKILL


def base_settings(bootstrap_servers: str, topic_prefix: str) -> dict[str, object]:
    """What every process of a test shares: its broker, its topics, short group timeouts
    (each join or leave pauses a group about half the session timeout), 2 partitions."""
    return {
        "bootstrap_servers": bootstrap_servers,
        "topic_prefix": topic_prefix,
        "request_partitions": 2,
        "results_partitions": 2,
        **GROUP_TIMEOUTS,
    }


def env_value(value: object) -> str:
    """A setting as pydantic-settings reads it from the environment (lists as JSON)."""
    return str(value) if isinstance(value, str | Path) else json.dumps(value)


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid`: with the pid, it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live process below `pid`."""
    found: set[tuple[int, str]] = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                started = _start_time(int(child))
                if started is not None:
                    found.add((int(child), started))
                    found |= descendants(int(child))
    return found


def _kill_exact(processes: Iterable[tuple[int, str]], sig: signal.Signals) -> None:
    """Signal each process that is still the one recorded (a pid may have been reused)."""
    for pid, started in processes:
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


class Service:
    """One `python -m inferq ...` process, its output in `log_path`."""

    def __init__(
        self, name: str, args: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [*INFERQ, *args],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # Children of a process we killed: orphaned, so no longer found below it.
        self._orphans: set[tuple[int, str]] = set()
        self._terminated = False  # a SIGTERM was sent: another one would skip the drain

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def describe(self, tail: int = 4000) -> str:
        """For assertion messages: who it is, how it ended, the end of its log."""
        return (
            f"{self.name} (pid {self.pid}, returncode {self.returncode}); "
            f"the end of its log {self.log_path}:\n{self.log()[-tail:]}"
        )

    def signal(self, sig: signal.Signals) -> None:
        if self.running:
            self._terminated |= sig == signal.SIGTERM
            self.process.send_signal(sig)

    def request_stop(self) -> None:
        """SIGTERM, unless one was sent already (a second one makes inferq exit at once,
        without draining)."""
        if not self._terminated:
            self.signal(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL, as a crash: no drain, no commit, no group leave. Children it started
        (`--processes N`) live on as they would; `stop` ends them. Returns its exit code."""
        self._orphans |= descendants(self.pid)
        self.process.kill()
        return self.process.wait(timeout=STOP_GRACE_S)

    async def exited(self, within_s: float) -> int:
        """Its exit code, once it has exited; fails after `within_s` seconds."""

        async def probe() -> int | None:
            return self.process.poll()

        try:
            return await eventually(probe, within_s=within_s, interval=0.05)
        except TimeoutError:
            raise AssertionError(f"still running after {within_s}s: {self.describe()}") from None

    async def terminate(self, within_s: float) -> int:
        """SIGTERM, then its exit code once it has drained and exited."""
        self.signal(signal.SIGTERM)
        return await self.exited(within_s)

    async def until(
        self, probe: Callable[[], Awaitable[T | None]], what: str, within_s: float = READY_WITHIN_S
    ) -> T:
        """Poll `probe` until it returns a value; fail at once if this process exits."""

        async def alive() -> T | None:
            if not self.running:
                raise AssertionError(f"exited before {what}: {self.describe()}")
            return await probe()

        try:
            return await eventually(alive, within_s=within_s, interval=0.05)
        except TimeoutError:
            raise AssertionError(f"not {what} within {within_s}s: {self.describe()}") from None

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """End it and every process it started: SIGTERM, SIGKILL after `grace_s`."""
        family = descendants(self.pid) if self.running else set()
        self.request_stop()
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            family |= descendants(self.pid)
            self.process.kill()
            self.process.wait(timeout=grace_s)
        _kill_exact(family | self._orphans, signal.SIGKILL)


class ApiService(Service):
    """The results API as a process, listening on `url`."""

    def __init__(
        self, name: str, port: int, env: Mapping[str, str], log_path: Path, args: Sequence[str]
    ) -> None:
        super().__init__(name, args, env, log_path)
        self.url = f"http://127.0.0.1:{port}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    async def ready(self, within_s: float = READY_WITHIN_S) -> None:
        """Until GET /readyz answers 200 (ingestion has its partitions)."""
        async with self.client() as http:

            async def probe() -> bool | None:
                try:
                    response = await http.get("/readyz", timeout=1)
                except httpx.TransportError:
                    return None
                return True if response.status_code == 200 else None

            await self.until(probe, "ready", within_s)


class Supervisor:
    """Starts inferq processes for one test; `close` stops every one of them."""

    def __init__(self, log_dir: Path, settings: Mapping[str, object]) -> None:
        self.log_dir = log_dir
        self.settings = dict(settings)
        self.services: list[Service] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def env(self, **settings: object) -> dict[str, str]:
        """This environment without INFERQ_* variables, plus the supervisor's settings and
        `settings` as INFERQ_<NAME>."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
        for name, value in {**self.settings, **settings}.items():
            env[f"INFERQ_{name.upper()}"] = env_value(value)
        return env

    def _log_path(self, name: str) -> Path:
        return self.log_dir / f"{len(self.services):02d}-{name}.log"

    def start(self, name: str, args: Sequence[str], **settings: object) -> Service:
        service = Service(name, args, self.env(**settings), self._log_path(name))
        self.services.append(service)
        return service

    def worker(self, name: str, **settings: object) -> Service:
        """`inferq worker`, its results marked `worker: name` (`name-<n>` for each of
        `processes=N` > 1); one process unless `settings` say otherwise."""
        return self.start(name, ["worker"], **{"worker_name": name, "processes": 1, **settings})

    def api(
        self, name: str, store: Path, port: int | None = None, **settings: object
    ) -> ApiService:
        """`inferq api` on `port` (a free one if None), results kept in the SQLite file `store`."""
        port = port or free_port()
        env = self.env(store=f"sqlite:///{store.resolve()}", port=port, **settings)
        service = ApiService(name, port, env, self._log_path(name), ["api"])
        self.services.append(service)
        return service

    def close(self) -> None:
        """SIGTERM every process still running at once, then wait for each (SIGKILL after
        the grace period), so that they drain side by side."""
        for service in self.services:
            service.request_stop()
        for service in self.services:
            service.stop()

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ResultsWatcher:
    """Reads the results topic from its beginning (no group: it never rebalances) and
    counts terminal events. Use as `async with ResultsWatcher(...) as results:`."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.events: Counter[tuple[str, str]] = Counter()  # (job id, terminal status) -> seen
        self.terminal: Counter[str] = Counter()  # job id -> terminal events seen
        self.by_worker: Counter[str] = Counter()  # worker -> terminal events it wrote
        self.gaps = GapGuard()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def __aenter__(self) -> "ResultsWatcher":
        await self._consumer.start()
        try:

            async def partitions() -> set[int] | None:
                await self._consumer.topics()  # refreshes the metadata
                found: set[int] | None = self._consumer.partitions_for_topic(self.topic)
                return found or None

            assigned = [
                TopicPartition(self.topic, p)
                for p in sorted(await eventually(partitions, within_s=READY_WITHIN_S, interval=0.1))
            ]
            self._consumer.assign(assigned)
            await self._consumer.seek_to_beginning(*assigned)
        except BaseException:
            await self._consumer.stop()
            raise
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        try:
            while True:
                fetched = await self._consumer.getmany(timeout_ms=100, max_records=10_000)
                for partition, records in fetched.items():
                    for record in self.gaps.follow_on(self._consumer, partition, records):
                        self._note(json.loads(record.value))
                if fetched:
                    async with self._changed:
                        self._changed.notify_all()
        except Exception as exc:
            self._error = exc
            async with self._changed:
                self._changed.notify_all()
            raise

    def _note(self, event: dict[str, Any]) -> None:
        if event["status"] in TERMINAL:
            self.events[event["job_id"], event["status"]] += 1
            self.terminal[event["job_id"]] += 1
            self.by_worker[event.get("worker") or "?"] += 1

    async def holds(self, condition: Callable[[], bool], within_s: float) -> bool:
        """Whether `condition()` came to hold within `within_s` (checked after each fetch)."""
        try:
            async with asyncio.timeout(within_s), self._changed:
                await self._changed.wait_for(lambda: self._error is not None or condition())
        except TimeoutError:
            return False
        if self._error is not None:
            raise AssertionError(f"the results watcher failed: {self._error!r}")
        return True

    async def until(self, condition: Callable[[], bool], what: str, within_s: float) -> None:
        """Until `condition()` holds; fails after `within_s` seconds."""
        if not await self.holds(condition, within_s):
            raise AssertionError(
                f"{what}: not seen within {within_s}s; terminal events by worker: "
                f"{dict(self.by_worker)}"
            )

    async def until_finished(self, job_ids: Sequence[str], within_s: float) -> None:
        """Until every one of `job_ids` has a terminal event on the results topic."""
        remaining = {job_id for job_id in job_ids if not self.terminal[job_id]}

        def done() -> bool:
            remaining.difference_update([j for j in remaining if self.terminal[j]])
            return not remaining

        await self.until(done, f"a terminal event for each of {len(job_ids)} jobs", within_s)


async def serving(http: httpx.AsyncClient, model: str, workers: set[str]) -> None:
    """Until GET /v1/models lists `workers` serving `model`: they have loaded it and created
    its request topic (not yet proof that they have partitions)."""

    async def probe() -> bool | None:
        models = (await http.get("/v1/models")).json()["models"]
        served = {w for m in models if m["name"] == model for w in m["workers"]}
        return True if workers <= served else None

    try:
        await eventually(probe, within_s=READY_WITHIN_S, interval=0.1)
    except TimeoutError:
        raise AssertionError(f"{sorted(workers)} not serving {model}") from None


async def read_jobs(
    http: httpx.AsyncClient, job_ids: Sequence[str], within_s: float, concurrency: int = 16
) -> dict[str, dict[str, Any]]:
    """Each job as GET /v1/jobs/{id} answers once it is terminal (long-polls). Any answer
    but 200 fails: every id given was acknowledged by the broker before this call."""
    gate = asyncio.Semaphore(concurrency)

    async def read(job_id: str) -> dict[str, Any]:
        async with gate:
            while True:
                response = await http.get(f"/v1/jobs/{job_id}", params={"wait": 10}, timeout=20)
                assert response.status_code == 200, (job_id, response.status_code, response.text)
                job: dict[str, Any] = response.json()
                if job["status"] in TERMINAL:
                    return job

    async with asyncio.timeout(within_s), asyncio.TaskGroup() as tasks:
        reads = [tasks.create_task(read(job_id)) for job_id in job_ids]
    return {job_id: task.result() for job_id, task in zip(job_ids, reads, strict=True)}


def stored_statuses(path: Path) -> Counter[str]:
    """Rows of the SQLite result store by status: one row per job (the job id is its key)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT json_extract(CAST(doc AS TEXT), '$.status'), count(*) FROM jobs GROUP BY 1"
        ).fetchall()
    return Counter({str(status): int(count) for status, count in rows})
