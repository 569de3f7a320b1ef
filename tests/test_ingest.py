"""Results ingestion does not die: after an error that is not an outage, it starts over.
It commits what it stored every `commit_interval_ms` (tests/test_commits.py), and once
more when it stops."""

import asyncio
import re
from collections.abc import Iterable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from inferq.connections import aiokafka_options, producer_options
from results_api.ingest import Ingestor
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


async def publish(settings: ApiSettings, jobs: int) -> None:
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        for n in range(jobs):
            event = JobEvent(job_id=f"job-{n}", status=JobStatus.SUCCEEDED, model="m")
            record = encode_event(event)
            await producer.send_and_wait(
                settings.topics.results, record.value, key=record.key, headers=record.headers
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


async def test_ingestion_commits_each_interval_and_when_it_stops(api_settings: ApiSettings) -> None:
    settings = api_settings.model_copy(update={"commit_interval_ms": 60_000})
    await publish(settings, 6)
    store = await SQLiteStore(":memory:", retention_s=3600.0).open()
    ingestor = Ingestor(settings, store, JobWaiters())
    stop = asyncio.Event()
    running = asyncio.create_task(ingestor.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, True if ingestor.ingested == 6 else None))
        offsets = await committed(settings)
        assert offsets == [None] * len(offsets), offsets  # the interval has not passed
    finally:
        stop.set()
        await running
        await store.close()
    offsets = await committed(settings)
    assert sum(o or 0 for o in offsets) == 6, offsets  # every partition up to its end
