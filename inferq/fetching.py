"""Fetch past records the Kafka client cannot parse.

aiokafka parses a fetched batch record by record. A record it cannot parse (a header
*name* that is not UTF-8, which Kafka's protocol allows and a raw-bytes producer can
write; a batch whose checksum or sizes are wrong) makes `getmany` raise, and every call
after it raises the same way: the reader is stuck on that record for good. Worse, the
records the failed call had already taken from other partitions are dropped while their
positions move on.

`getmany` here returns what `AIOKafkaConsumer.getmany` would, and reads around such a
record instead: the partitions whose positions the failed call moved go back to where
they were, each partition is fetched on its own, the partition that fails is read one
record at a time up to the record that fails (fetched once more to be sure), and that
record comes back as an `UnreadableRecord` in its place (no key, value or headers;
`error` says why), so each reader reports it where it reports an undecodable record, and
moves past it. A batch is parsed from its first record whatever the offset asked for, so
the records after an unreadable one in the same producer batch cannot be read either:
they come back unreadable one per call. A record that fails once and parses when fetched
again (a transfer gone wrong) is read as usual.

The unreadable record's offset is the position after the last record read, which is the
failing record's own on a topic without compaction or transactions (inferq's): there,
offsets follow on one by one.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CorruptRecordException, IllegalStateError

log = logging.getLogger(__name__)

# What aiokafka's record parser raises (its C parser decodes header names as UTF-8).
PARSE_ERRORS = (UnicodeDecodeError, CorruptRecordException)
READ_LIMIT = 500  # records read around an unreadable one in a call, without `max_records`


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
    timestamp: int = -1  # not known


def _no_rebalances() -> int:
    return 0


async def getmany(
    consumer: AIOKafkaConsumer,
    *partitions: Any,
    timeout_ms: int,
    max_records: int | None = None,
    generation: Callable[[], int] = _no_rebalances,
) -> dict[Any, list[Any]]:
    """`consumer.getmany(*partitions, ...)`, reading around records it cannot parse.

    Only partitions with a position are fetched (one just assigned has none until its
    committed offset is known: this waits for it up to `timeout_ms`, as the fetch would),
    so that each can be put back. `generation` counts the consumer's rebalances (its
    listener tells them): a rebalance while this reads around a record mixes records of
    two assignments and leaves the positions it saved stale, so then it returns nothing
    and sends the partitions back to their committed offsets."""
    start = generation()
    wanted = partitions or tuple(consumer.assignment())
    before = await positions(consumer, wanted, timeout_ms)
    if wanted and not before:
        return {}  # no position known yet: the next call asks again
    try:
        fetched: dict[Any, list[Any]] = await consumer.getmany(
            *before, timeout_ms=timeout_ms, max_records=max_records
        )
        return fetched
    except PARSE_ERRORS as exc:
        log.warning("a fetched record cannot be parsed (%s): reading each partition alone", exc)
    # A partition that moved on lost what the failed call took from it. One that did not
    # kept its place, and so did one that a rebalance meanwhile sent back to its committed
    # offset: that is where its reading goes on.
    for tp, offset in (await positions(consumer, before, timeout_ms)).items():
        if offset > before[tp]:
            consumer.seek(tp, before[tp])
    left = max_records or READ_LIMIT
    fetched = {}
    for tp in before:
        if left <= 0 or tp not in consumer.assignment():
            continue  # read by the next call, or revoked: its next owner reads it
        with contextlib.suppress(IllegalStateError):  # revoked while it was read
            if records := await _alone(consumer, tp, timeout_ms, left):
                fetched[tp] = records
                left -= len(records)
    if generation() != start:
        await _to_committed(consumer, before)
        return {}
    assigned = consumer.assignment()
    return {tp: records for tp, records in fetched.items() if tp in assigned}


async def _to_committed(consumer: AIOKafkaConsumer, partitions: Any) -> None:
    """Send the partitions this consumer still holds back to their committed offsets (the
    start of the log where none is): no record after one is acknowledged yet. A commit
    point that cannot be read raises: the reader stops rather than lose records."""
    log.warning("a rebalance came while reading around an unparseable record: reading again")
    for tp in partitions:
        with contextlib.suppress(IllegalStateError):  # revoked: its next owner reads it
            if tp not in consumer.assignment():
                continue
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)


async def positions(consumer: AIOKafkaConsumer, partitions: Any, timeout_ms: int) -> dict[Any, int]:
    """The positions of `partitions`, waiting up to `timeout_ms` for those without one yet
    (0: waiting for none); one revoked meanwhile, or still without a position then, is
    left out."""
    known: dict[Any, int] = {}
    deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
    for tp in partitions:  # one without a position hides none after it
        with contextlib.suppress(TimeoutError, IllegalStateError):
            async with asyncio.timeout_at(deadline):
                known[tp] = await consumer.position(tp)
    return known


async def at_log_ends(consumer: AIOKafkaConsumer) -> bool:
    """Whether every partition the consumer holds is read to the log end its last fetch
    saw; not while one has no position or no log end yet (just assigned), nor when a
    rebalance comes meanwhile."""
    held = consumer.assignment()
    at = await positions(consumer, held, 0)
    if set(at) != held or consumer.assignment() != held:
        return False
    return all((end := consumer.highwater(tp)) is not None and at[tp] >= end for tp in held)


async def _alone(consumer: AIOKafkaConsumer, tp: Any, timeout_ms: int, limit: int) -> list[Any]:
    """Up to `limit` records of one partition; if they cannot all be parsed, those before
    the first that cannot, then that one as an `UnreadableRecord`, with the position past
    it."""
    end = consumer.highwater(tp)
    if end is not None and await consumer.position(tp) >= end:
        return []  # at the log end: nothing to wait for
    try:
        fetched: dict[Any, list[Any]] = await consumer.getmany(
            tp, timeout_ms=timeout_ms, max_records=limit
        )
    except PARSE_ERRORS:
        return await _walk(consumer, tp, timeout_ms, limit)
    return fetched.get(tp, [])


async def _walk(consumer: AIOKafkaConsumer, tp: Any, timeout_ms: int, limit: int) -> list[Any]:
    """One record a call from the position, so the record that fails is the one there."""
    records: list[Any] = []
    # The failed call left the position where it was and its parser dead: fetch afresh,
    # once; the calls after it go on through what that fetch brought.
    consumer.seek(tp, await consumer.position(tp))
    while len(records) < limit:
        offset = await consumer.position(tp)
        try:
            one: dict[Any, list[Any]] = await consumer.getmany(
                tp, timeout_ms=timeout_ms, max_records=1
            )
        except PARSE_ERRORS as exc:
            if not await _fails_again(consumer, tp, offset, timeout_ms):
                break  # it came, or nothing did, this time: the next call goes on from here
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
            break  # nothing came in time: the next call goes on from here
        records.extend(one[tp])
    return records


async def _fails_again(consumer: AIOKafkaConsumer, tp: Any, offset: int, timeout_ms: int) -> bool:
    """Whether the record at `offset` fails when fetched once more, before any record comes
    (one that comes is not kept, nor is the failure if nothing comes in time: the position
    goes back to `offset`)."""
    consumer.seek(tp, offset)
    try:
        await consumer.getmany(tp, timeout_ms=timeout_ms, max_records=1)
    except PARSE_ERRORS:
        return True
    consumer.seek(tp, offset)
    return False
