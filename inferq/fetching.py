"""Fetch past records the Kafka client cannot parse.

aiokafka parses a fetched batch record by record. A record it cannot parse (a header
*name* that is not UTF-8, which Kafka's protocol allows and a raw-bytes producer can
write; a batch whose checksum or sizes are wrong) makes `getmany` raise, and every call
after it raises the same way: the reader is stuck on that record for good. Worse, the
records the failed call had already taken from other partitions are dropped while their
positions move on.

`getmany` here returns what `AIOKafkaConsumer.getmany` would, and reads around such a
record instead: the positions go back to where they were before the failed call, each
partition is fetched on its own, the partition that fails is read one record at a time
up to the record that fails, and that record comes back as an `UnreadableRecord` in its
place (no key, value or headers; `error` says why), so each reader reports it where it
reports an undecodable record, and moves past it. A batch is parsed from its first record
whatever the offset asked for, so the records after an unreadable one in the same
producer batch cannot be read either: they come back unreadable one per call. A record
that fails once and parses when fetched again (a transfer gone wrong) is read as usual.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CorruptRecordException, IllegalStateError

log = logging.getLogger(__name__)

# What aiokafka's record parser raises (its C parser decodes header names as UTF-8).
PARSE_ERRORS = (UnicodeDecodeError, CorruptRecordException)
WALK_LIMIT = 500  # records read one at a time in one call, at most


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """In place of a record the Kafka client could not parse."""

    topic: str
    partition: int
    offset: int
    error: str
    key: None = None
    value: None = None
    headers: tuple[()] = ()


async def getmany(
    consumer: AIOKafkaConsumer, *partitions: Any, timeout_ms: int, max_records: int | None = None
) -> dict[Any, list[Any]]:
    """`consumer.getmany(*partitions, ...)`, reading around records it cannot parse."""
    before = await _positions(consumer, partitions or tuple(consumer.assignment()), timeout_ms)
    try:
        fetched: dict[Any, list[Any]] = await consumer.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )
        return fetched
    except PARSE_ERRORS as exc:
        log.warning("a fetched record cannot be parsed (%s): reading each partition alone", exc)
    assigned = consumer.assignment()
    for tp, offset in before.items():
        if tp in assigned:
            consumer.seek(tp, offset)
    fetched = {}
    for tp in before:
        if tp not in consumer.assignment():
            continue  # revoked meanwhile: its next owner reads it
        try:
            if records := await _alone(consumer, tp, timeout_ms, max_records):
                fetched[tp] = records
        except IllegalStateError:
            continue  # revoked while it was read
    return fetched


async def _positions(
    consumer: AIOKafkaConsumer, partitions: Any, timeout_ms: int
) -> dict[Any, int]:
    """The positions of `partitions`. A partition just assigned has none until its committed
    offset is known: this waits for it, as the fetch would, up to `timeout_ms`. One revoked
    meanwhile, or still without a position then, is left out: it is not put back if the
    fetch fails."""
    known: dict[Any, int] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_ms / 1000):
            for tp in partitions:
                with contextlib.suppress(IllegalStateError):
                    known[tp] = await consumer.position(tp)
    return known


async def _alone(
    consumer: AIOKafkaConsumer, tp: Any, timeout_ms: int, max_records: int | None
) -> list[Any]:
    """The records of one partition; if they cannot all be parsed, those before the first
    that cannot (up to WALK_LIMIT of them) and then that one as an `UnreadableRecord`, with
    the position past it."""
    end = consumer.highwater(tp)
    if end is not None and await consumer.position(tp) >= end:
        return []  # at the log end: nothing to wait for
    try:
        fetched: dict[Any, list[Any]] = await consumer.getmany(
            tp, timeout_ms=timeout_ms, max_records=max_records
        )
    except PARSE_ERRORS:
        return await _walk(consumer, tp, timeout_ms)
    return fetched.get(tp, [])


async def _walk(consumer: AIOKafkaConsumer, tp: Any, timeout_ms: int) -> list[Any]:
    """One record a call from the position, so the record that fails is the one there."""
    # The failed call left the position where it was and its parser dead: start afresh.
    consumer.seek(tp, await consumer.position(tp))
    records: list[Any] = []
    while True:
        try:
            one: dict[Any, list[Any]] = await consumer.getmany(
                tp, timeout_ms=timeout_ms, max_records=1
            )
        except PARSE_ERRORS as exc:
            offset = await consumer.position(tp)
            consumer.seek(tp, offset + 1)
            error = f"{type(exc).__name__}: {exc}"
            log.error(
                "record %s[%d]@%d cannot be parsed by the Kafka client (%s): read past it",
                tp.topic,
                tp.partition,
                offset,
                error,
            )
            return [*records, UnreadableRecord(tp.topic, tp.partition, offset, error)]
        if not one:
            return records  # read this time: the failure did not come back
        records.extend(one[tp])
        if len(records) >= WALK_LIMIT:
            return records  # the next call goes on from here
