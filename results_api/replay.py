"""Rebuild the result store by replaying the results topic from its beginning.

The store is a view of the results topic: applying every event of every partition, from
its first record to the end it had when the replay began, gives the view again. The
consumer has no group, so nothing is committed and the API's ingestion is not disturbed;
applying an event twice changes nothing, so a replay may run next to a live API.

A job's retention counts from the time its event was written (the record's timestamp, by
the minute: up to a minute later), not from the replay: a job whose retention has passed
is not brought back, and the others expire when they would have.
"""

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from inferq.connections import consumer_options
from inferq.fetching import getmany
from results_api.ingest import MINUTE_MS, kept_by_minute
from results_api.settings import ApiSettings
from results_api.store import ResultStore, open_store

log = logging.getLogger(__name__)

FETCH_TIMEOUT_MS = 1000


class ReplayError(RuntimeError):
    pass


async def replay(settings: ApiSettings, store: ResultStore) -> int:
    """Apply every decodable event of the results topic to `store`; returns how many."""
    topic = settings.topics.results
    consumer = AIOKafkaConsumer(**consumer_options(settings, None))
    try:
        await consumer.start()
        await consumer.topics()  # refreshes the metadata
        found: set[int] | None = consumer.partitions_for_topic(topic)
        if not found:
            raise ReplayError(f"topic {topic!r} does not exist")
        partitions = [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[Any, int] = await consumer.end_offsets(partitions)
        applied = 0
        while unread := [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            fetched = await getmany(consumer, *unread, timeout_ms=FETCH_TIMEOUT_MS)
            groups, decoded = kept_by_minute(fetched.values())
            for minute, events in groups.items():
                await store.apply_encoded(events, at=(minute + 1) * MINUTE_MS / 1000)
            applied += decoded
        log.info("replayed %d events of %s", applied, topic)
        return applied
    finally:
        await consumer.stop()


async def rebuild(settings: ApiSettings) -> int:
    """`inferq store rebuild`: replay the results topic into the store the settings name."""
    store = await open_store(
        settings.store, retention_s=settings.result_retention_s, namespace=settings.topic_prefix
    )
    try:
        return await replay(settings, store)
    finally:
        await store.close()
