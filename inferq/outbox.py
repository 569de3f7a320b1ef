"""Records sent in batches the sender builds, one batch per partition at a time.

aiokafka's `send` spends 14-18 us of CPU on each record on the development machine: it
looks up the topic's metadata, places the record, wraps it in a coroutine and a future,
and later resolves that future with the record's metadata. Appending the record to a
batch built here (`create_batch`, then `send_batch`) spends 4.9-6.3 us fed one record a
call, 2.8-4.5 fed 256 (`python -m bench.outbox`), and the broker no more.
An `Outbox` keeps one open batch per partition; the records put while the
partition's previous batch waits for the broker join the open one, so batches grow with
the load as aiokafka's own do. A record's acknowledgement is its batch's: every record of
a batch succeeds or fails with it, as in aiokafka (a batch travels in one produce request),
so an open batch is closed before a record would take it past `batch_bytes` (counted with
aiokafka's upper bound of a record's size): it always fits one aiokafka batch, and a
record over `batch_bytes` travels alone. Records of one partition are sent in the order
they were put.
"""

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from inferq.partitioner import place
from schemas import KafkaRecord

Destination = tuple[str, int]  # topic, partition
BATCH_HEADER_BYTES = 61  # of a record batch (format 2); aiokafka's estimate of a record has it


class _Open:
    """Records waiting for their partition's turn, and the future they share."""

    def __init__(self) -> None:
        self.records: list[KafkaRecord] = []
        self.bytes = BATCH_HEADER_BYTES  # at most, once built
        self.acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.taken = asyncio.Event()  # by the sender: a new batch opens


class Outbox:
    """Batches for `producer`, whose `max_batch_size` must be `batch_bytes`: per partition,
    one open batch, one the sender is handing over, and what aiokafka holds (one queued, one
    with the broker). A record that finds the open batch full waits for the sender to take
    it, at most `max_wait_s`; a record over `max_record_bytes` is refused."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        batch_bytes: int,
        max_record_bytes: int,
        max_wait_s: float,
    ) -> None:
        self._producer = producer
        self._batch_bytes = batch_bytes
        self._max_record_bytes = max_record_bytes
        self._max_wait_s = max_wait_s
        self._open: dict[Destination, _Open] = {}
        self._senders: dict[Destination, asyncio.Task[None]] = {}

    async def put(
        self, records: Sequence[tuple[str, KafkaRecord]], *, stop_at_refusal: bool = False
    ) -> list["asyncio.Future[None]"]:
        """Queue `(topic, record)` pairs; each one's future is done when its batch is
        acknowledged (or failed with the batch's error). A record over `max_record_bytes`,
        one for a topic whose partitions cannot be learned, or one that found its batch
        full for `max_wait_s`, fails at once; with `stop_at_refusal`, the records after it
        are not taken (fewer futures than records come back)."""
        partitions: dict[str, list[int] | KafkaError] = {}
        stalled: dict[Destination, KafkaTimeoutError] = {}  # later records fail at once
        futures: list[asyncio.Future[None]] = []
        for topic, record in records:
            if stop_at_refusal and futures and futures[-1].done():
                break  # only a refused record's future is done at once
            known = partitions.get(topic)
            if known is None:
                known = partitions[topic] = await self._partitions(topic)
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
                record.key, record.value, record.headers
            )
            if isinstance(known, KafkaError):
                futures.append(_failed(known))
                continue
            if size > self._max_record_bytes:
                futures.append(_failed(_too_large(size)))
                continue
            destination = (topic, place(record.key or None, known, known))
            if destination in stalled:
                futures.append(_failed(stalled[destination]))
                continue
            try:
                futures.append(await self._join(destination, record, size))
            except KafkaTimeoutError as exc:
                stalled[destination] = exc
                futures.append(_failed(exc))
        return futures

    async def _partitions(self, topic: str) -> list[int] | KafkaError:
        try:
            return sorted(await self._producer.partitions_for(topic))
        except KafkaError as exc:
            return exc

    async def _join(
        self, destination: Destination, record: KafkaRecord, size: int
    ) -> "asyncio.Future[None]":
        while (waiting := self._open.get(destination)) is not None:
            if waiting.bytes + size - BATCH_HEADER_BYTES <= self._batch_bytes:
                break
            try:
                await asyncio.wait_for(waiting.taken.wait(), self._max_wait_s)
            except TimeoutError as exc:
                raise KafkaTimeoutError(
                    f"no room for the record within {self._max_wait_s:g} s"
                ) from exc
        else:
            waiting = self._open[destination] = _Open()
        waiting.records.append(record)
        waiting.bytes += size - BATCH_HEADER_BYTES
        if destination not in self._senders:
            self._senders[destination] = asyncio.create_task(self._send(destination))
        return waiting.acknowledged

    async def _send(self, destination: Destination) -> None:
        """Send the partition's open batch, again and again, until none is left open.
        `send_batch` returns once aiokafka has queued the batch, which waits while the
        partition's previous batch is still queued: meanwhile the next one fills."""
        topic, partition = destination
        try:
            while (waiting := self._open.pop(destination, None)) is not None:
                waiting.taken.set()
                try:
                    batch = self._batch(waiting.records)
                    sent = await self._producer.send_batch(batch, topic, partition=partition)
                except Exception as exc:  # a KafkaError passes; any other is a bug, told
                    waiting.acknowledged.set_exception(exc)
                    continue
                except BaseException:
                    waiting.acknowledged.cancel()
                    raise
                _follow(waiting.acknowledged, sent)
        finally:
            del self._senders[destination]
            left = self._open.pop(destination, None)  # only when cancelled
            if left is not None:
                left.taken.set()
                left.acknowledged.cancel()

    def _batch(self, records: list[KafkaRecord]) -> object:
        batch = self._producer.create_batch()
        for record in records:
            appended = batch.append(
                key=record.key or None, value=record.value, timestamp=None, headers=record.headers
            )
            if appended is None:  # `put` counts sizes so that this cannot happen
                raise ValueError(
                    f"{len(records)} records overflow a batch: is the producer's "
                    f"max_batch_size smaller than batch_bytes ({self._batch_bytes})?"
                )
        return batch

    async def close(self) -> None:
        """Stop sending: the records not handed to aiokafka yet are cancelled. (Call it
        before stopping the producer, which would not send a batch handed over after.)"""
        senders = list(self._senders.values())
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        for waiting in self._open.values():
            waiting.taken.set()
            waiting.acknowledged.cancel()
        self._open.clear()


def _follow(target: "asyncio.Future[None]", sent: "asyncio.Future[object]") -> None:
    """Finish `target` as aiokafka's future of its batch finishes."""

    def done(answer: "asyncio.Future[object]") -> None:
        if target.done():
            return
        if answer.cancelled():
            target.cancel()
        elif (error := answer.exception()) is not None:
            target.set_exception(error)
        else:
            target.set_result(None)

    sent.add_done_callback(done)


def _failed(error: KafkaError) -> "asyncio.Future[None]":
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed.set_exception(error)
    return failed


def _too_large(size: int) -> MessageSizeTooLargeError:
    # aiokafka's own words for a record over `max_request_size`
    return MessageSizeTooLargeError(
        f"The message is {size} bytes when serialized which is larger than the maximum "
        "request size you have configured with the max_request_size configuration"
    )
