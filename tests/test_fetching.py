"""A record the Kafka client cannot parse (here a header name that is not UTF-8) is read
around: the records beside it are all read, it comes back as an `UnreadableRecord`, the
worker dead-letters it and serves on, and results ingestion skips it."""

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer

from inferq.admin import ensure_topics
from inferq.demo_models import dataset
from inferq.devbroker import DevBroker
from inferq.fetching import UnreadableRecord, at_log_ends, getmany
from inferq.settings import KafkaSettings
from producer import AsyncClient, ProducerSettings
from results_api.settings import ApiSettings
from tests.support import dead_letters, eventually, unique_prefix, wait_terminal
from worker import Worker, WorkerSettings

MESSAGE = "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0"


class RawName(str):
    """A header name that kafka-python writes as bytes that are not UTF-8."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe-name"


BAD_HEADERS = [(RawName("x"), b"v")]


@pytest.fixture
def raw_producer(broker: DevBroker) -> Iterator[KafkaProducer]:
    """kafka-python, which writes header names through `str.encode` (aiokafka would refuse)."""
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False, linger_ms=500
    )
    try:
        yield producer
    finally:
        producer.close()


def put(
    producer: KafkaProducer, topic: str, partition: int, value: bytes, bad: bool = False
) -> int:
    """One record in a batch of its own; its offset."""
    sent = producer.send(topic, value, partition=partition, headers=BAD_HEADERS if bad else None)
    producer.flush()
    return int(sent.get(10).offset)


@pytest.fixture
async def reader(broker: DevBroker) -> AsyncIterator[tuple[str, AIOKafkaConsumer]]:
    topic = f"{unique_prefix()}.t"
    await ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), {topic: 2})
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        yield topic, consumer
    finally:
        await consumer.stop()


async def read(
    consumer: AIOKafkaConsumer, count: int, max_records: int | None = None
) -> dict[int, list[tuple[int, Any]]]:
    """(offset, value or the unreadable record's error) per partition, `count` in all."""
    seen: dict[int, list[tuple[int, Any]]] = {0: [], 1: []}

    async def everything() -> dict[int, list[tuple[int, Any]]] | None:
        fetched = await getmany(consumer, timeout_ms=100, max_records=max_records)
        assert sum(map(len, fetched.values())) <= (max_records or 500)
        for tp, records in fetched.items():
            seen[tp.partition] += [
                (r.offset, r.error if isinstance(r, UnreadableRecord) else r.value) for r in records
            ]
        return seen if sum(map(len, seen.values())) >= count else None

    return await eventually(everything)


def unreadable(offset: int) -> tuple[int, str]:
    return offset, MESSAGE


@pytest.mark.parametrize("max_records", [None, 2])
async def test_the_records_around_an_unreadable_one_are_all_read(
    raw_producer: KafkaProducer, reader: tuple[str, AIOKafkaConsumer], max_records: int | None
) -> None:
    topic, consumer = reader
    put(raw_producer, topic, 1, b"one-0")
    for n in range(3):
        put(raw_producer, topic, 0, b"zero-%d" % n)
    put(raw_producer, topic, 0, b"bad", bad=True)
    put(raw_producer, topic, 0, b"zero-4")
    put(raw_producer, topic, 1, b"one-1")

    seen = await read(consumer, 7, max_records)

    # Without the guard, every fetch fails, and the records it took from partition 1
    # are dropped as its position moves on.
    errors = {offset: error for offset, error in seen[0] if isinstance(error, str)}
    assert list(errors) == [3]
    assert errors[3].startswith(MESSAGE)
    assert [(o, v) for o, v in seen[0] if o != 3] == [
        (0, b"zero-0"),
        (1, b"zero-1"),
        (2, b"zero-2"),
        (4, b"zero-4"),
    ]
    assert seen[1] == [(0, b"one-0"), (1, b"one-1")]


async def test_the_rest_of_an_unreadable_records_batch_is_unreadable_too(
    raw_producer: KafkaProducer, reader: tuple[str, AIOKafkaConsumer]
) -> None:
    topic, consumer = reader
    for value, bad in ((b"first", False), (b"bad", True), (b"same-batch", False)):
        raw_producer.send(topic, value, partition=0, headers=BAD_HEADERS if bad else None)
    raw_producer.flush()  # the three in one batch (linger 500 ms)
    put(raw_producer, topic, 0, b"next-batch")

    seen = await read(consumer, 4)

    # aiokafka parses a batch from its start, so the record after the bad one fails too.
    assert [(o, v if isinstance(v, bytes) else v[: len(MESSAGE)]) for o, v in seen[0]] == [
        (0, b"first"),
        unreadable(1),
        unreadable(2),
        (3, b"next-batch"),
    ]


async def committed(settings: WorkerSettings, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.topics.worker_group("breast_cancer"),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(tp)
        return offset
    finally:
        await consumer.stop()


async def test_the_worker_dead_letters_an_unreadable_request_and_serves_on(
    api: httpx.AsyncClient,
    worker: Worker,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    raw_producer: KafkaProducer,
) -> None:
    topic = worker_settings.topics.requests("breast_cancer")
    offset = put(raw_producer, topic, 0, b"{}", bad=True)
    features, _ = dataset("breast_cancer")
    async with AsyncClient(settings=producer_settings) as client:
        job_id = await client.submit("breast_cancer", {"input": features[:1]})
    assert (await wait_terminal(api, job_id))["status"] == "succeeded"

    [letter] = await dead_letters(worker_settings, 1)
    headers = dict(letter.headers)
    assert not letter.key  # nothing of the record could be read
    assert letter.value == b""
    assert headers["inferq-error-code"] == b"malformed_record"
    assert (
        headers["inferq-error"]
        .decode()
        .startswith(f"the Kafka client cannot parse this record: {MESSAGE}")
    )
    assert headers["inferq-origin-topic"] == topic.encode()
    assert (headers["inferq-origin-partition"], headers["inferq-origin-offset"]) == (
        b"0",
        str(offset).encode(),
    )

    async def past_it() -> int | None:  # committed once the dead letter is acknowledged
        at = await committed(worker_settings, TopicPartition(topic, 0))
        return at if at is not None and at > offset else None

    assert await eventually(past_it) > offset


async def skipped(api: httpx.AsyncClient) -> float:
    text = (await api.get("/metrics")).text
    match = re.search(r"^inferq_ingest_skipped_total (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


async def test_results_ingestion_skips_an_unreadable_event_and_goes_on(
    api: httpx.AsyncClient,
    api_settings: ApiSettings,
    producer_settings: ProducerSettings,
    raw_producer: KafkaProducer,
) -> None:
    put(raw_producer, api_settings.topics.results, 0, b"{}", bad=True)
    features, _ = dataset("breast_cancer")
    async with AsyncClient(settings=producer_settings) as client:
        job_id = await client.submit("breast_cancer", {"input": features[:1]})
    assert (await wait_terminal(api, job_id))["status"] == "succeeded"

    async def any_skipped() -> float | None:
        return value if (value := await skipped(api)) else None

    assert await eventually(any_skipped) == 1


async def test_a_rebalance_while_reading_around_sends_partitions_to_their_commit_points(
    broker: DevBroker, raw_producer: KafkaProducer
) -> None:
    """The records read around an unreadable one may be of two assignments then, and the
    positions saved before of the old one: none is returned, and reading starts again
    from each partition's committed offset (the log's start where none is)."""
    topic = f"{unique_prefix()}.t"
    await ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), {topic: 2})
    put(raw_producer, topic, 0, b"bad", bad=True)
    put(raw_producer, topic, 0, b"zero-1")
    put(raw_producer, topic, 1, b"one-0")
    put(raw_producer, topic, 1, b"one-1")
    zero, one = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"{topic}.group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    ticks: list[int] = []

    def rebalancing() -> int:
        """A rebalance between any two looks: a call that reads around sees one."""
        ticks.append(len(ticks))
        return ticks[-1]

    async def read_around() -> bool | None:
        looks = len(ticks)
        fetched = await getmany(consumer, timeout_ms=100, generation=rebalancing)
        if len(ticks) - looks == 1:
            return None  # no unreadable record in this fetch: it looked once
        assert fetched == {}
        return True

    try:
        consumer.assign([zero, one])
        await consumer.commit({one: 1})
        await eventually(read_around)
        assert [await consumer.position(zero), await consumer.position(one)] == [0, 1]
        seen = await read(consumer, 3)
    finally:
        await consumer.stop()
    assert [(o, v if isinstance(v, bytes) else v[: len(MESSAGE)]) for o, v in seen[0]] == [
        unreadable(0),
        (1, b"zero-1"),
    ]
    assert seen[1] == [(1, b"one-1")]


async def test_at_log_ends_only_once_every_partition_is_read_to_its_end(
    raw_producer: KafkaProducer, reader: tuple[str, AIOKafkaConsumer]
) -> None:
    topic, consumer = reader
    put(raw_producer, topic, 0, b"zero-0")
    assert not await at_log_ends(consumer)  # no position nor log end known yet
    seen = await read(consumer, 1)
    assert seen == {0: [(0, b"zero-0")], 1: []}

    async def both_ends() -> bool | None:
        await getmany(consumer, timeout_ms=100)  # partition 1's log end comes with a fetch
        return await at_log_ends(consumer) or None

    assert await eventually(both_ends)
    put(raw_producer, topic, 1, b"one-0")

    async def behind() -> bool | None:
        return not await at_log_ends(consumer) or None

    await eventually(behind)  # once a fetch has seen the new log end, not read yet
