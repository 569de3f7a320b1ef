"""Results ingestion does not die: after an error that is not an outage, it starts over."""

import asyncio
import re
from collections.abc import Iterable

import pytest
from aiokafka import AIOKafkaProducer

from inferq.connections import producer_options
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

    async def apply_encoded(self, events: Iterable[Encoded]) -> None:
        if not self.refused:
            self.refused += 1
            raise StoreError("READONLY You can't write against a read only replica.")
        await super().apply_encoded(events)


async def test_ingestion_starts_over_after_a_store_error(
    api_settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    producer = AIOKafkaProducer(**producer_options(api_settings))
    await producer.start()
    try:
        for n in range(3):
            event = JobEvent(job_id=f"job-{n}", status=JobStatus.SUCCEEDED, model="m")
            record = encode_event(event)
            await producer.send_and_wait(
                api_settings.topics.results, record.value, key=record.key, headers=record.headers
            )
    finally:
        await producer.stop()

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
