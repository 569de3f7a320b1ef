"""The result store (SQLite) and the job waiters of the results API, without a broker."""

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from results_api.store import SQLiteStore, StoreError, open_store, sqlite_path
from results_api.waiters import JobWaiters
from schemas import ErrorInfo, JobEvent, JobStatus, Tensor, Timings, supersedes

BOUND_S = 10.0  # an upper bound on waits that should end at once, never a threshold


def event(job_id: str, status: JobStatus, **fields: object) -> JobEvent:
    return JobEvent.model_validate({"job_id": job_id, "status": status, **fields})


def succeeded(job_id: str) -> JobEvent:
    return JobEvent(
        job_id=job_id,
        status=JobStatus.SUCCEEDED,
        model="breast_cancer",
        model_version="1",
        outputs=[Tensor.from_numpy("probabilities", np.array([[0.25, 0.75]], dtype=np.float32))],
        timings=Timings(queued_ms=3.5, inference_ms=1.25, batch_size=2),
        worker="w1",
        submitted_at=datetime(2025, 5, 1, 12, 0, tzinfo=UTC),
        completed_at=datetime(2025, 5, 1, 12, 0, 1, tzinfo=UTC),
        metadata={"tenant": "a"},
    )


def failed(job_id: str) -> JobEvent:
    error = ErrorInfo(code="inference_error", message="model breast_cancer failed: boom")
    return event(job_id, JobStatus.FAILED, error=error, worker="w2")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore(str(tmp_path / "results.db")).open()
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
        (
            "postgresql://db/results",
            "unsupported store 'postgresql://db/results': expected sqlite:///path/to/file.db",
        ),
        ("results.db", "unsupported store 'results.db': expected sqlite:///path/to/file.db"),
        ("sqlite://", "store 'sqlite://' names no file"),
        ("sqlite:///", "store 'sqlite:///' names no file"),
    ],
)
async def test_unsupported_store_urls(url: str, message: str) -> None:
    with pytest.raises(StoreError) as caught:
        await open_store(url)
    assert str(caught.value) == message


async def test_round_trip(store: SQLiteStore) -> None:
    assert await store.get("job-1") is None
    await store.apply([succeeded("job-1"), failed("job-2")])
    assert await store.get("job-1") == succeeded("job-1")
    assert await store.get("job-2") == failed("job-2")
    assert await store.get("job-3") is None
    await store.apply([])
    await store.ping()


async def test_memory_store() -> None:
    memory = await open_store("sqlite:///:memory:")
    try:
        await memory.apply([event("m-1", JobStatus.QUEUED)])
        assert await memory.get("m-1") == event("m-1", JobStatus.QUEUED)
    finally:
        await memory.close()


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
    store: SQLiteStore, order: list[str], winner: str, one_call: bool
) -> None:
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


async def test_store_follows_supersedes_for_every_pair(store: SQLiteStore) -> None:
    for i, (old, new) in enumerate(itertools.product(JobStatus, JobStatus)):
        first, second = event(f"p{i}", old, worker="first"), event(f"p{i}", new, worker="second")
        await store.apply([first])
        await store.apply([second])
        kept = await store.get(f"p{i}")
        assert kept == (second if supersedes(new, old) else first), (old, new)


async def test_data_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'results.db'}"
    first = await open_store(url)
    await first.apply([succeeded("kept"), event("moving", JobStatus.QUEUED)])
    await first.close()
    assert (tmp_path / "nested" / "results.db").is_file()
    second = await open_store(url)
    try:
        assert await second.get("kept") == succeeded("kept")
        await second.apply([event("moving", JobStatus.RUNNING), failed("kept")])
        assert await second.get("moving") == event("moving", JobStatus.RUNNING)
        assert await second.get("kept") == succeeded("kept")
    finally:
        await second.close()


async def test_a_store_that_is_not_open(tmp_path: Path) -> None:
    closed = SQLiteStore(str(tmp_path / "never.db"))
    with pytest.raises(StoreError) as caught:
        await closed.get("j")
    assert str(caught.value) == "store is not open"
    await closed.close()


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


async def test_a_notify_before_the_wait_is_not_lost() -> None:
    waiters = JobWaiters()
    with waiters.watch("c") as changed:
        waiters.notify(["c"])  # lands between registering and waiting
        async with asyncio.timeout(BOUND_S):
            await changed.wait()
