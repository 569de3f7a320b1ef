"""What is particular to each kind of result store (the contract they share is in
tests/test_store_contract.py), and the job waiters of the results API."""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from inferq.devbroker import free_port
from results_api.routes.common import after_catching_up
from results_api.sqlite_store import SQLiteStore, sqlite_path
from results_api.store import StoreError, open_store
from results_api.waiters import JobWaiters
from schemas import JobEvent, JobStatus
from tests.support import eventually, unique_prefix
from tests.test_store_contract import (
    BOUND_S,
    LONG_S,
    REDIS_URL,
    Stores,
    event,
    failed,
    succeeded,
    watching,
)

ACCEPTED = (
    "expected sqlite:///relative.db, sqlite:////absolute.db, sqlite://:memory:, "
    "redis://host:port/db or rediss://host:port/db"
)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_stores(tmp_path: Path, redis: Redis) -> AsyncIterator[Stores]:
    opened = Stores("redis", tmp_path, redis)
    yield opened
    await opened.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///results.db", "results.db"),
        ("sqlite:///data/results.db", "data/results.db"),
        ("sqlite:////var/lib/inferq/results.db", "/var/lib/inferq/results.db"),
        ("sqlite://results.db", "results.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://:memory:", ":memory:"),
    ],
)
def test_sqlite_path(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db/results", f"unsupported store 'postgresql://db/results': {ACCEPTED}"),
        ("results.db", f"unsupported store 'results.db': {ACCEPTED}"),
        (
            "mysql://me:secret@db/results",
            f"unsupported store 'mysql://me:***@db/results': {ACCEPTED}",
        ),
        ("sqlite://", "store 'sqlite://' names no file"),
        ("sqlite:///", "store 'sqlite:///' names no file"),
        (
            "redis://:secret@cache:port/0",
            "store 'redis://:***@cache:port/0' is not a Redis URL: "
            "Port could not be cast to integer value as 'port'",
        ),
    ],
)
async def test_unsupported_store_urls(url: str, message: str) -> None:
    """Every message names what is accepted and never shows a password."""
    with pytest.raises(StoreError) as caught:
        await open_store(url, retention_s=LONG_S, namespace="inferq")
    assert str(caught.value) == message


async def test_memory_store() -> None:
    memory = await open_store("sqlite:///:memory:", retention_s=LONG_S, namespace="inferq")
    try:
        await memory.apply([event("m-1", JobStatus.QUEUED)])
        assert await memory.get("m-1") == event("m-1", JobStatus.QUEUED)
    finally:
        await memory.close()


async def test_data_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'results.db'}"
    first = await open_store(url, retention_s=LONG_S, namespace="inferq")
    await first.apply([succeeded("kept"), event("moving", JobStatus.QUEUED)])
    await first.close()
    assert (tmp_path / "nested" / "results.db").is_file()
    second = await open_store(url, retention_s=LONG_S, namespace="inferq")
    try:
        assert await second.get("kept") == succeeded("kept")
        await second.apply([event("moving", JobStatus.RUNNING), failed("kept")])
        assert await second.get("moving") == event("moving", JobStatus.RUNNING)
        assert await second.get("kept") == succeeded("kept")
    finally:
        await second.close()


async def test_a_store_that_is_not_open(tmp_path: Path) -> None:
    closed = SQLiteStore(str(tmp_path / "never.db"), retention_s=LONG_S)
    with pytest.raises(StoreError) as caught:
        await closed.get("j")
    assert str(caught.value) == "store is not open"
    await closed.close()


async def test_sqlite_retention_counts_from_the_last_change(tmp_path: Path) -> None:
    store = await SQLiteStore(str(tmp_path / "results.db"), retention_s=LONG_S).open()
    try:
        await store.apply([succeeded("j")])
        first = store.db.execute("SELECT updated_at FROM jobs").fetchall()
        await store.apply([event("j", JobStatus.QUEUED), failed("j")])  # changes nothing
        assert store.db.execute("SELECT updated_at FROM jobs").fetchall() == first
    finally:
        await store.close()


async def test_a_file_from_before_retention_gets_its_column(tmp_path: Path) -> None:
    """Its jobs count as changed when it is first opened."""
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, rank INTEGER, doc BLOB)")
        doc = succeeded("old").model_dump_json(exclude_none=True).encode()
        old.execute("INSERT INTO jobs VALUES ('old', 2, ?)", (doc,))
        old.commit()
    before = time.time()
    store = await SQLiteStore(str(path), retention_s=LONG_S).open()
    try:
        (updated_at,) = store.db.execute("SELECT updated_at FROM jobs").fetchone()
        assert before <= updated_at <= time.time()
        assert await store.get("old") == succeeded("old")
        await store.apply([failed("old"), event("new", JobStatus.QUEUED)])
        assert await store.get("old") == succeeded("old")
        assert await store.get("new") == event("new", JobStatus.QUEUED)
    finally:
        await store.close()


# Redis


async def test_redis_expiry_counts_from_the_last_change(redis_stores: Stores, redis: Redis) -> None:
    store = await redis_stores.redis_store()
    await store.apply([succeeded("j"), event("k", JobStatus.QUEUED)])
    first = await redis.pttl(store.key("j"))
    assert (LONG_S - BOUND_S) * 1000 < first <= LONG_S * 1000

    async def lower() -> bool | None:
        return True if await redis.pttl(store.key("j")) < first else None

    await eventually(lower, within_s=BOUND_S)
    await store.apply([event("j", JobStatus.QUEUED), failed("j")])  # changes nothing
    assert await redis.pttl(store.key("j")) < first
    await store.apply([event("k", JobStatus.RUNNING)])  # a change renews
    assert await redis.pttl(store.key("k")) > (LONG_S - BOUND_S) * 1000


async def test_watch_subscribes_again_after_a_dropped_connection(
    redis_stores: Stores, redis: Redis
) -> None:
    writer, watcher = await redis_stores.redis_store(), await redis_stores.redis_store()
    name = f"inferq-{redis_stores.namespace('main')}"  # the client name of both stores

    async def listeners() -> list[str]:
        return [c["id"] for c in await redis.client_list("pubsub") if c["name"] == name]

    async def listening_again() -> bool | None:
        return True if await listeners() not in ([], [dropped]) else None

    def resyncs(count: int) -> Callable[[], Awaitable[bool | None]]:
        async def reached() -> bool | None:
            return True if notified.resyncs >= count else None

        return reached

    async with watching(watcher, redis) as notified:
        (dropped,) = await listeners()
        await eventually(resyncs(1), within_s=BOUND_S)  # on subscribing
        assert await redis.client_kill_filter(_id=dropped) == 1
        await eventually(listening_again, within_s=BOUND_S)
        # what was published while no one listened is lost: every waiter reads again
        await eventually(resyncs(2), within_s=BOUND_S)
        assert notified.resyncs == 2
        await writer.apply([succeeded("after-the-drop")])
        assert await notified.next() == ["after-the-drop"]


async def test_watch_backs_off_while_redis_is_unreachable(
    caplog: pytest.LogCaptureFixture, redis: Redis
) -> None:
    """Nothing listens on the port: watch logs a warning and tries again until stopped."""
    caplog.set_level(logging.WARNING, logger="results_api.redis_store")
    url, namespace = f"redis://127.0.0.1:{free_port()}/0", unique_prefix()
    store = await open_store(url, retention_s=LONG_S, namespace=namespace)

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "results_api.redis_store"]

    async def warned_twice() -> bool | None:
        return True if len(warnings()) >= 2 else None

    try:
        async with watching(store, redis, wait_subscribed=False):
            await eventually(warned_twice, within_s=BOUND_S)
    finally:
        await store.close()
    assert warnings()[0].startswith(f"result store {url}: lost the channel {namespace}:changes (")


# The waiters


async def test_a_watcher_is_woken_by_notify() -> None:
    waiters = JobWaiters()
    with waiters.watch("j1") as changed:
        assert waiters.watched == 1
        asyncio.get_running_loop().call_soon(waiters.notify, ["other", "j1"])
        async with asyncio.timeout(BOUND_S):
            await changed.wait()
    assert waiters.watched == 0


async def test_notify_wakes_every_watcher_of_that_job_only() -> None:
    waiters = JobWaiters()
    with waiters.watch("a") as a1, waiters.watch("a") as a2, waiters.watch("b") as b:
        waiters.notify(["a", "unknown"])
        assert (a1.is_set(), a2.is_set(), b.is_set()) == (True, True, False)
        assert waiters.watched == 2
    assert waiters.watched == 0  # nothing left behind


async def test_wake_all_wakes_every_watcher() -> None:
    waiters = JobWaiters()
    with waiters.watch("a") as a1, waiters.watch("a") as a2, waiters.watch("b") as b:
        waiters.wake_all()
        assert (a1.is_set(), a2.is_set(), b.is_set()) == (True, True, True)
    assert waiters.watched == 0


async def test_a_notify_before_the_wait_is_not_lost() -> None:
    waiters = JobWaiters()
    with waiters.watch("c") as changed:
        waiters.notify(["c"])  # lands between registering and waiting
        async with asyncio.timeout(BOUND_S):
            await changed.wait()


class OneJob:
    """A store that holds job `j` once `stored` is set, and tells each read; an ingestor
    that never catches up."""

    def __init__(self) -> None:
        self.stored = False
        self.read = asyncio.Event()

    async def get(self, job_id: str) -> JobEvent | None:
        self.read.set()
        return event(job_id, JobStatus.QUEUED) if self.stored else None

    async def caught_up(self, since: float) -> None:
        await asyncio.Event().wait()


async def test_a_wake_that_brings_no_job_does_not_end_the_wait_for_it() -> None:
    """A GET for a job in flight waits for its event: a wake of every waiter (the change feed
    came back) with nothing stored for it yet is not a 404."""
    store, changed = OneJob(), asyncio.Event()
    waiting = asyncio.create_task(after_catching_up("j", changed, store, store, BOUND_S))
    changed.set()  # woken, and nothing stored
    async with asyncio.timeout(BOUND_S):
        await store.read.wait()
    assert not waiting.done()
    store.stored = True
    changed.set()
    async with asyncio.timeout(BOUND_S):
        assert await waiting == event("j", JobStatus.QUEUED)
