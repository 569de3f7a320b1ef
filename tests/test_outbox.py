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
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from inferq.admin import ensure_topics
from inferq.connections import producer_options
from inferq.devbroker import DevBroker
from inferq.outbox import BATCH_HEADER_BYTES, Outbox
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
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    await ensure_topics(settings, {topic: 1})
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


async def test_records_for_a_topic_without_metadata_fail_and_the_others_go(
    broker: DevBroker,
) -> None:
    """A topic whose partitions cannot be learned fails its records with that (passing)
    error, for the sender's next round; the records for other topics go meanwhile."""
    async with one_partition(broker, request_timeout_ms=300) as (topic, producer):
        outbox = Outbox(producer, batch_bytes=4096, max_record_bytes=1 << 20, max_wait_s=10)
        first, second, third = await outbox.put(
            [("bad/topic", record(0)), (topic, record(1)), ("bad/topic", record(2))]
        )
        await second  # acknowledged: raises otherwise
    assert numbers(await values(broker.bootstrap_servers, topic, 1)) == [1]
    error = first.exception()
    assert isinstance(error, UnknownTopicOrPartitionError)
    assert third.exception() is error  # the topic was asked about once


async def test_stop_at_refusal_takes_no_record_after_a_refused_one(broker: DevBroker) -> None:
    async with one_partition(broker, request_timeout_ms=300) as (topic, producer):
        outbox = Outbox(producer, batch_bytes=4096, max_record_bytes=1 << 20, max_wait_s=10)
        futures = await outbox.put(
            [(topic, record(0)), ("bad/topic", record(1)), (topic, record(2))],
            stop_at_refusal=True,
        )
        assert len(futures) == 2
        await futures[0]
        assert isinstance(futures[1].exception(), UnknownTopicOrPartitionError)
        [marker] = await outbox.put([(topic, record(3))])
        await marker
    # record 2 would have come before the marker: the partition keeps the order of puts
    assert numbers(await values(broker.bootstrap_servers, topic, 2)) == [0, 3]


def estimate(r: KafkaRecord) -> int:
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, r.headers)
    return size


async def test_a_batch_closes_before_it_would_overflow_and_a_large_record_goes_alone(
    broker: DevBroker,
) -> None:
    """Each open batch fits one aiokafka batch of the producer's size (a record that would
    not fit overflows it: `ValueError`), so a batch's acknowledgement is its records' own."""
    async with one_partition(broker, max_batch_size=1024) as (topic, producer):
        outbox = Outbox(producer, batch_bytes=1024, max_record_bytes=1 << 20, max_wait_s=10)
        records = [record(i, size=3000 if i == 20 else 200) for i in range(50)]
        futures = await outbox.put([(topic, r) for r in records])
        await asyncio.gather(*futures)
    batches: dict[asyncio.Future[None], list[KafkaRecord]] = {}
    for r, future in zip(records, futures, strict=True):
        batches.setdefault(future, []).append(r)
    assert batches[futures[20]] == [records[20]]  # the large record: a batch of its own
    assert len(batches) > 2
    assert all(
        BATCH_HEADER_BYTES + sum(estimate(r) - BATCH_HEADER_BYTES for r in rs) <= 1024
        for future, rs in batches.items()
        if future is not futures[20]
    )
    assert numbers(await values(broker.bootstrap_servers, topic, 50)) == list(range(50))


async def put_while_frozen(
    broker: DevBroker, outbox: Outbox, topic: str, count: int
) -> list[asyncio.Future[None]]:
    """Put `count` records in one call with the broker stopped (SIGSTOP), then wake it."""
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        return await outbox.put([(topic, record(i)) for i in range(count)])
    finally:
        os.kill(broker.pid, signal.SIGCONT)


async def test_put_waits_for_room_and_fails_after_max_wait_s_while_the_broker_is_frozen() -> None:
    """What waits in the outbox is bounded: with the broker not answering, the partition's
    batches stop moving, and the record that finds the open batch full fails after
    `max_wait_s` with a passing error, the rest of the call's records for that partition at
    once with it. The records taken before are all delivered once the broker answers."""
    with DevBroker() as broker:
        async with one_partition(broker) as (topic, producer):
            await producer.partitions_for(topic)  # known before the broker stops
            outbox = Outbox(producer, batch_bytes=1024, max_record_bytes=1 << 20, max_wait_s=0.5)
            futures = await put_while_frozen(broker, outbox, topic, 200)
            taken = [f for f in futures if not f.done()]
            refused = futures[len(taken) :]
            assert all(f.done() for f in refused)  # the first refused ends what was taken
            errors = {id(f.exception()) for f in refused}
            assert len(errors) == 1  # one wait, one error: the others failed at once
            with pytest.raises(KafkaTimeoutError, match=r"no room for the record within 0\.5 s"):
                refused[0].result()
            # batches of `per` records: one with the broker, one queued in the producer,
            # one being handed over, one open; no more were taken
            per = (1024 - BATCH_HEADER_BYTES) // (estimate(record(0)) - BATCH_HEADER_BYTES)
            assert per < len(taken) <= 4 * per
            await asyncio.gather(*taken)
        read = await values(broker.bootstrap_servers, topic, len(taken))
    assert numbers(read) == list(range(len(taken)))


async def test_close_cancels_what_was_not_handed_over() -> None:
    with DevBroker() as broker:
        async with one_partition(broker) as (topic, producer):
            await producer.partitions_for(topic)
            outbox = Outbox(producer, batch_bytes=1024, max_record_bytes=1 << 20, max_wait_s=0.5)
            futures = await put_while_frozen(broker, outbox, topic, 200)
            taken = [f for f in futures if not f.done()]
            assert all(isinstance(f.exception(), KafkaTimeoutError) for f in futures[len(taken) :])
            await outbox.close()
            cancelled = [f for f in taken if f.cancelled()]
            # the open batch, full when the wait for room ran out, and the batch the sender
            # was handing over: the last records taken
            assert cancelled
            assert taken[len(taken) - len(cancelled) :] == cancelled
            await futures[0]  # with the broker before: aiokafka delivers it
