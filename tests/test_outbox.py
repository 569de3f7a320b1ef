"""The outbox sends records in batches it builds: in order per partition, split at the
producer's batch size, and never holding more than a batch per partition waiting."""

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaTimeoutError

from inferq.connections import producer_options
from inferq.devbroker import DevBroker
from inferq.outbox import Outbox
from inferq.settings import KafkaSettings
from schemas import KafkaRecord
from tests.support import eventually, unique_prefix

HEADERS = [("content-type", b"application/octet-stream")]


def record(i: int, size: int = 100) -> KafkaRecord:
    return KafkaRecord(b"key-%04d" % i, str(i).encode().ljust(size, b"."), HEADERS)


@asynccontextmanager
async def one_partition(
    broker: DevBroker, **producer: Any
) -> AsyncIterator[tuple[str, AIOKafkaProducer]]:
    """A topic of one partition, and a producer started for it."""
    topic = unique_prefix()
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    started = AIOKafkaProducer(**{**producer_options(settings), **producer})
    await started.start()
    try:
        yield topic, started
    finally:
        await started.stop()


async def values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    await consumer.seek_to_beginning(partition)
    seen: list[bytes] = []
    try:

        async def all_read() -> list[bytes] | None:
            batch = await consumer.getmany(timeout_ms=100)
            seen.extend(r.value for rs in batch.values() for r in rs)
            return seen if len(seen) >= count else None

        return await eventually(all_read)
    finally:
        await consumer.stop()


def numbers(read: Sequence[bytes]) -> list[int]:
    return [int(value.rstrip(b".")) for value in read]


async def test_records_put_one_by_one_share_batches_and_arrive_in_order(
    broker: DevBroker,
) -> None:
    async with one_partition(broker) as (topic, producer):
        outbox = Outbox(producer, batch_bytes=4096, max_record_bytes=1 << 20, max_wait_s=10)
        futures = [f for i in range(300) for f in await outbox.put([(topic, record(i))])]
        await asyncio.gather(*futures)  # raises if any batch failed
    assert 1 < len(set(futures)) < 300  # the records of a batch share its acknowledgement
    assert numbers(await values(broker.bootstrap_servers, topic, 300)) == list(range(300))


async def test_a_batch_larger_than_the_producers_is_sent_in_several(broker: DevBroker) -> None:
    async with one_partition(broker, max_batch_size=1024) as (topic, producer):
        outbox = Outbox(producer, batch_bytes=1 << 20, max_record_bytes=1 << 20, max_wait_s=10)
        futures = await outbox.put([(topic, record(i, size=200)) for i in range(50)])
        assert len(set(futures)) == 1  # one open batch took them all
        await futures[0]
    assert numbers(await values(broker.bootstrap_servers, topic, 50)) == list(range(50))


async def test_put_waits_for_room_and_fails_after_max_wait_s_while_the_broker_is_frozen() -> None:
    """What waits in the outbox is bounded: with the broker not answering, the partition's
    batches stop moving, and a record that finds the open batch full fails after `max_wait_s`
    with a passing error. The records taken before it are all delivered once it answers."""
    with DevBroker() as broker:
        async with one_partition(broker) as (topic, producer):
            outbox = Outbox(producer, batch_bytes=1024, max_record_bytes=1 << 20, max_wait_s=0.5)
            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                taken: list[asyncio.Future[None]] = []
                for i in range(200):
                    (future,) = await outbox.put([(topic, record(i))])
                    if future.done():
                        break
                    taken.append(future)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            with pytest.raises(KafkaTimeoutError, match=r"no room for the record within 0\.5 s"):
                future.result()
            # 10 records of 100 bytes fill a 1 KiB batch; one batch is away, one queued in
            # the producer, one waiting for its turn, one open: no more were taken.
            assert len(taken) <= 4 * 11
            await asyncio.gather(*taken)
        read = await values(broker.bootstrap_servers, topic, len(taken))
    assert numbers(read) == list(range(len(taken)))
