"""Results ingestion does not die: after an error that is not an outage, it starts over.
It commits what it stored every `commit_interval_ms` (tests/test_commits.py), and once
more when it stops."""

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from inferq.connections import aiokafka_options, producer_options
from results_api.ingest import MINUTE_MS, Ingestor, kept_by_minute
from results_api.settings import ApiSettings
from results_api.sqlite_store import SQLiteStore
from results_api.store import Encoded, StoreError
from results_api.waiters import JobWaiters
from schemas import JobEvent, JobStatus, encode_event
from tests.support import eventually


class RefusesOnce(SQLiteStore):
    """Refuses its first write the way a read-only Redis replica does (not an outage)."""

    refused = 0

    async def apply_encoded(self, events: Iterable[Encoded], at: float | None = None) -> None:
        if not self.refused:
            self.refused += 1
            raise StoreError("READONLY You can't write against a read only replica.")
        await super().apply_encoded(events, at)


async def publish(settings: ApiSettings, jobs: int, *, ages_s: Iterable[float] = ()) -> None:
    """`jobs` results, job-0 to job-N; with `ages_s`, written that long ago each."""
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    ages = list(ages_s) or [0.0] * jobs
    try:
        for n, age in zip(range(jobs), ages, strict=True):
            event = JobEvent(job_id=f"job-{n}", status=JobStatus.SUCCEEDED, model="m")
            record = encode_event(event)
            await producer.send_and_wait(
                settings.topics.results,
                record.value,
                key=record.key,
                headers=record.headers,
                timestamp_ms=round((time.time() - age) * 1000),
            )
    finally:
        await producer.stop()


async def committed(settings: ApiSettings) -> list[int | None]:
    """The ingest group's committed offset of each results partition."""
    consumer = AIOKafkaConsumer(
        **aiokafka_options(settings), group_id=settings.ingest_group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # a bare start asks for no topic's metadata
        topic = settings.topics.results
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        assert partitions, f"no partitions of {topic}"
        return [await consumer.committed(TopicPartition(topic, p)) for p in partitions]
    finally:
        await consumer.stop()


async def test_ingestion_starts_over_after_a_store_error(
    api_settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(api_settings, 3)

    store = RefusesOnce(":memory:", retention_s=3600.0)
    await store.open()
    ingestor = Ingestor(api_settings, store, JobWaiters())
    stop = asyncio.Event()
    with caplog.at_level("ERROR", logger="results_api.restart"):
        running = asyncio.create_task(ingestor.run(stop))
        try:

            async def all_stored() -> bool | None:
                found = [await store.get(f"job-{n}") for n in range(3)]
                return True if all(found) else None

            await eventually(all_stored)
        finally:
            stop.set()
            await running
            await store.close()
    assert store.refused == 1
    assert ingestor.ingested == 3
    (message,) = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(
        r"results ingestion failed; starting over from the committed offsets in "
        r"(0\.[5-9]|1\.0) s",
        message,
    ), message  # the first pause: from 0.5 to 1 s


@contextlib.asynccontextmanager
async def ingested(settings: ApiSettings, events: int) -> AsyncIterator[SQLiteStore]:
    """A store that ingestion fills while the block runs, once it has ingested `events`."""
    store = await SQLiteStore(":memory:", retention_s=3600.0).open()
    ingestor = Ingestor(settings, store, JobWaiters())
    stop = asyncio.Event()
    running = asyncio.create_task(ingestor.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, True if ingestor.ingested == events else None))
        yield store
    finally:
        stop.set()
        await running
        await store.close()


async def test_ingestion_commits_each_interval_and_when_it_stops(api_settings: ApiSettings) -> None:
    settings = api_settings.model_copy(update={"commit_interval_ms": 60_000})
    await publish(settings, 6)
    async with ingested(settings, 6):
        offsets = await committed(settings)
        assert offsets == [None] * len(offsets), offsets  # the interval has not passed
    offsets = await committed(settings)
    assert sum(o or 0 for o in offsets) == 6, offsets  # every partition up to its end


async def test_events_read_again_keep_their_retention(api_settings: ApiSettings) -> None:
    """A job's retention counts from when its event was written: an ingest group that reads
    the topic anew (a new replica's, offsets lost) does not bring back what has expired."""
    await publish(api_settings, 3, ages_s=[2 * 3600, 0, 30 * 60])
    async with ingested(api_settings, 3) as store:
        found = [await store.get(f"job-{n}") is not None for n in range(3)]
    assert found == [False, True, True]


@dataclass(frozen=True)
class Record:
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int
    topic: str = "t.results"
    partition: int = 0
    offset: int = 0


def written(event: JobEvent, minute: int) -> Record:
    record = encode_event(event)
    return Record(record.value, list(record.headers), minute * MINUTE_MS + 1)


def test_a_fetch_keeps_each_jobs_event_in_log_order_whatever_its_clock_says() -> None:
    """A job's events share a partition; a worker whose clock is behind writes its result a
    minute "before" the cancellation that came first in the log: the cancellation wins,
    as it does in the log, and each job's one event goes with its own minute."""
    cancelled = written(JobEvent(job_id="b", status=JobStatus.CANCELLED), 601)
    late = written(JobEvent(job_id="b", status=JobStatus.SUCCEEDED), 600)
    other = written(JobEvent(job_id="a", status=JobStatus.SUCCEEDED), 600)
    broken = Record(b"{oops", [], 600 * MINUTE_MS)
    groups, decoded = kept_by_minute([[other], [cancelled, late, broken]])
    assert decoded == 3
    assert {
        minute: [(job, status) for job, status, _ in events] for minute, events in groups.items()
    } == {
        600: [("a", JobStatus.SUCCEEDED)],
        601: [("b", JobStatus.CANCELLED)],
    }
