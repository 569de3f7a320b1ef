"""The result store's contract: the same cases against SQLite and against Redis.

The Redis cases need a server at 127.0.0.1:6379 (CI starts one); every test works in a
namespace of its own and deletes its keys after it.
"""

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from results_api.redis_store import RedisStore
from results_api.sqlite_store import SQLiteStore
from results_api.store import Encoded, ResultStore, open_store
from schemas import (
    Callback,
    ErrorInfo,
    JobEvent,
    JobStatus,
    Tensor,
    Timings,
    encode_event,
    supersedes,
)
from tests.support import eventually, unique_prefix

REDIS_URL = "redis://127.0.0.1:6379/0"
LONG_S = 3600.0
SHORT_S = 0.05
BOUND_S = 10.0  # an upper bound on waits that should end at once, never a threshold


def event(job_id: str, status: JobStatus, **fields: object) -> JobEvent:
    return JobEvent.model_validate({"job_id": job_id, "status": status, **fields})


def succeeded(job_id: str) -> JobEvent:
    """A succeeded event with every field set."""
    return JobEvent(
        job_id=job_id,
        status=JobStatus.SUCCEEDED,
        model="breast_cancer",
        model_version="1",
        outputs=[Tensor.from_numpy("probabilities", np.array([[0.25, 0.75]], dtype=np.float32))],
        timings=Timings(queued_ms=3.5, batch_wait_ms=0.5, inference_ms=1.25, batch_size=2),
        worker="w1",
        submitted_at=datetime(2025, 5, 1, 12, 0, tzinfo=UTC),
        completed_at=datetime(2025, 5, 1, 12, 0, 1, tzinfo=UTC),
        metadata={"tenant": "a", "tags": ["x", 1, None]},
        callback=Callback.model_validate(
            {"url": "https://hooks.example.com/inferq", "events": ["running", "completed"]}
        ),
        tenant="acme",
    )


def failed(job_id: str) -> JobEvent:
    error = ErrorInfo(code="inference_error", message="model breast_cancer failed: boom")
    return event(job_id, JobStatus.FAILED, error=error, worker="w2")


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A plain client of the test Redis, to look behind a store's back."""
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


class Stores:
    """Stores of one kind for one test, opened by name (two stores of one name share their
    data), closed after the test, and their Redis keys deleted."""

    def __init__(self, kind: str, tmp_path: Path, redis: Redis) -> None:
        self.kind = kind
        self._tmp_path = tmp_path
        self._redis = redis
        self._base = unique_prefix()
        self._opened: list[ResultStore] = []

    def namespace(self, name: str) -> str:
        return f"{self._base}-{name}"

    async def open(self, name: str = "main", *, retention_s: float = LONG_S) -> ResultStore:
        url = REDIS_URL if self.kind == "redis" else f"sqlite:///{self._tmp_path / name}.db"
        store = await open_store(url, retention_s=retention_s, namespace=self.namespace(name))
        self._opened.append(store)
        return store

    async def redis_store(self, name: str = "main") -> RedisStore:
        store = await self.open(name)
        assert isinstance(store, RedisStore)
        return store

    async def close(self) -> None:
        for store in self._opened:
            await store.close()
        if self.kind == "redis":
            keys = [key async for key in self._redis.scan_iter(match=f"{self._base}-*:*")]
            if keys:
                await self._redis.delete(*keys)


@pytest.fixture(params=["sqlite", "redis"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path, redis: Redis
) -> AsyncIterator[Stores]:
    opened = Stores(request.param, tmp_path, redis)
    yield opened
    await opened.close()


@pytest.fixture
async def store(stores: Stores) -> ResultStore:
    return await stores.open()


class Notified:
    """What `watch` reported, and an event set at each report; `resyncs`: how many times it
    said to read everything again."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.called = asyncio.Event()
        self.resyncs = 0

    def __call__(self, job_ids: list[str]) -> None:
        self.calls.append(job_ids)
        self.called.set()

    def resync(self) -> None:
        self.resyncs += 1

    async def next(self) -> list[str]:
        async with asyncio.timeout(BOUND_S):
            await self.called.wait()
        self.called.clear()
        return self.calls[-1]


@contextlib.asynccontextmanager
async def watching(
    store: ResultStore, redis: Redis, *, wait_subscribed: bool = True
) -> AsyncIterator[Notified]:
    """`store.watch` running (for Redis: subscribed), stopped at the end; it must end then."""
    notified, stop = Notified(), asyncio.Event()
    task = asyncio.create_task(store.watch(notified, notified.resync, stop))
    try:
        if wait_subscribed and isinstance(store, RedisStore):
            await eventually(lambda: subscribed(redis, store.channel), within_s=BOUND_S)
        yield notified
    finally:
        stop.set()
        async with asyncio.timeout(BOUND_S):
            await task


async def subscribed(redis: Redis, channel: str) -> bool | None:
    found = await redis.pubsub_numsub(channel)
    return True if int(found[0][1]) == 1 else None


async def test_an_unknown_job_is_none(store: ResultStore) -> None:
    assert await store.get("never-seen") is None
    await store.ping()


async def test_full_events_round_trip(store: ResultStore) -> None:
    await store.apply([succeeded("job-1"), failed("job-2")])
    assert await store.get("job-1") == succeeded("job-1")
    assert await store.get("job-2") == failed("job-2")
    assert await store.get("job-3") is None
    await store.apply([])
    await store.apply_encoded([])


async def test_a_job_moves_forward(store: ResultStore) -> None:
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):
        await store.apply([event("j", status, model="breast_cancer")])
        assert await store.get("j") == event("j", status, model="breast_cancer")
    await store.apply([succeeded("j")])
    assert await store.get("j") == succeeded("j")


@pytest.mark.parametrize("one_call", [True, False])
@pytest.mark.parametrize(
    ("order", "winner"),
    [
        (["queued", "succeeded"], "succeeded"),
        (["succeeded", "queued"], "succeeded"),
        (["succeeded", "failed"], "succeeded"),
        (["failed", "succeeded"], "failed"),
        (["succeeded", "running"], "succeeded"),
        (["queued", "running"], "running"),
        (["running", "queued"], "running"),
        (["queued", "running", "failed", "succeeded", "queued"], "failed"),
    ],
)
async def test_terminal_states_never_regress(
    store: ResultStore, order: list[str], winner: str, one_call: bool
) -> None:
    """In separate calls or within one call, in the order given: the first terminal wins."""
    events = {
        "queued": event("j", JobStatus.QUEUED, model="breast_cancer"),
        "running": event("j", JobStatus.RUNNING, worker="w1"),
        "succeeded": succeeded("j"),
        "failed": failed("j"),
    }
    if one_call:
        await store.apply([events[name] for name in order])
    else:
        for name in order:
            await store.apply([events[name]])
    assert await store.get("j") == events[winner]


async def test_the_store_follows_supersedes_for_every_pair(store: ResultStore) -> None:
    for i, (old, new) in enumerate(itertools.product(JobStatus, JobStatus)):
        first, second = event(f"p{i}", old, worker="first"), event(f"p{i}", new, worker="second")
        await store.apply([first])
        await store.apply([second])
        kept = await store.get(f"p{i}")
        assert kept == (second if supersedes(new, old) else first), (old, new)


def encoded(*events: JobEvent) -> list[Encoded]:
    return [(e.job_id, e.status, encode_event(e).value) for e in events]


async def test_apply_encoded_is_apply(stores: Stores) -> None:
    by_events, by_encoded = await stores.open("events"), await stores.open("encoded")
    events = [
        event("a", JobStatus.QUEUED, model="breast_cancer"),
        succeeded("a"),
        failed("a"),
        event("b", JobStatus.RUNNING, worker="w1"),
        event("b", JobStatus.QUEUED),
        failed("c"),
    ]
    await by_events.apply(events)
    await by_encoded.apply_encoded(encoded(*events))
    for job_id in ("a", "b", "c"):
        assert await by_encoded.get(job_id) == await by_events.get(job_id)
    assert await by_encoded.get("a") == succeeded("a")
    assert await by_encoded.get("b") == event("b", JobStatus.RUNNING, worker="w1")


async def gone(store: ResultStore, job_id: str) -> bool | None:
    return True if await store.get(job_id) is None else None


async def test_a_job_expires_after_its_retention(stores: Stores) -> None:
    short = await stores.open("short", retention_s=SHORT_S)
    long = await stores.open("long", retention_s=LONG_S)
    for opened in (short, long):
        await opened.apply([succeeded("s"), event("q", JobStatus.QUEUED)])
    await eventually(lambda: gone(short, "s"), within_s=BOUND_S)
    await eventually(lambda: gone(short, "q"), within_s=BOUND_S)
    assert await long.get("s") == succeeded("s")
    assert await long.get("q") == event("q", JobStatus.QUEUED)
    # SQLite deletes the expired rows now; Redis deleted its keys by their expiry.
    assert await short.purge_expired() == (2 if stores.kind == "sqlite" else 0)
    assert await short.purge_expired() == 0
    assert await long.purge_expired() == 0
    assert await long.get("s") == succeeded("s")


async def test_retention_counts_from_when_the_events_happened(stores: Stores) -> None:
    store = await stores.open()
    now = time.time()
    await store.apply_encoded(encoded(succeeded("past")), at=now - LONG_S - 1)
    await store.apply_encoded(encoded(succeeded("ending")), at=now - LONG_S + 5)
    await store.apply_encoded(encoded(succeeded("recent")), at=now - LONG_S / 2)
    await store.apply_encoded(encoded(succeeded("future")), at=now + LONG_S)  # taken as now
    assert await store.get("past") is None  # its retention had passed: not kept
    assert await store.get("ending") == succeeded("ending")
    await eventually(lambda: gone(store, "ending"), within_s=BOUND_S)
    for job_id in ("recent", "future"):
        assert await store.get(job_id) == succeeded(job_id)


async def stored(store: ResultStore, redis: Redis, job_id: str) -> bytes | None:
    """What the store holds for the job, whatever its retention: rank digit and JSON."""
    if isinstance(store, SQLiteStore):
        query = "SELECT rank, doc FROM jobs WHERE job_id = ?"
        row = store.db.execute(query, (job_id,)).fetchone()
        return None if row is None else b"%d" % row[0] + bytes(row[1])
    assert isinstance(store, RedisStore)
    value = await redis.get(store.key(job_id))
    assert value is None or isinstance(value, bytes)
    return value


async def test_an_expired_job_starts_afresh(stores: Stores, redis: Redis) -> None:
    """Past its retention a job is as good as unknown: even a queued event replaces it."""
    store = await stores.open("short", retention_s=SHORT_S)
    await store.apply([succeeded("j")])
    await eventually(lambda: gone(store, "j"), within_s=BOUND_S)
    queued = event("j", JobStatus.QUEUED)
    await store.apply([queued])
    kept = b"0" + encode_event(queued).value
    if stores.kind == "sqlite":  # the expired row is still in the file until a purge
        assert await stored(store, redis, "j") == kept
    else:  # Redis deleted the key at its expiry; the new one may have expired already
        assert await stored(store, redis, "j") in (None, kept)


async def test_watch_returns_when_stopped(store: ResultStore, redis: Redis) -> None:
    async with watching(store, redis) as notified:
        pass
    assert notified.calls == []


@pytest.fixture
async def redis_stores(tmp_path: Path, redis: Redis) -> AsyncIterator[Stores]:
    opened = Stores("redis", tmp_path, redis)
    yield opened
    await opened.close()


async def test_an_apply_notifies_the_other_replicas(redis_stores: Stores, redis: Redis) -> None:
    writer, watcher = await redis_stores.redis_store(), await redis_stores.redis_store()
    async with watching(watcher, redis) as notified:
        await watcher.apply([event("own", JobStatus.QUEUED)])  # not news to the watcher
        await writer.apply([failed("own")])
        assert await notified.next() == ["own"]
        await writer.apply([event("own", JobStatus.QUEUED)])  # changes nothing: no message
        await writer.apply(
            [event("a", JobStatus.QUEUED), event("b", JobStatus.RUNNING), succeeded("a")]
        )
        assert await notified.next() == ["a", "b"]
        assert notified.calls == [["own"], ["a", "b"]]
        assert await watcher.get("a") == succeeded("a")
