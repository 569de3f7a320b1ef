"""Send results and dead letters; when the broker has acknowledged them, finish their records.

A failed send is a transient error: retried with exponential backoff and jitter
(`RESEND`) until it succeeds or the worker stops: records whose results are not
acknowledged are never committed, so another worker runs them again.
"""

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from inferq.retry import Backoff
from schemas import JobEvent, KafkaRecord, encode_event
from schemas.codec import Headers
from worker.offsets import OffsetTracker

log = logging.getLogger(__name__)

HEADER_ERROR_CODE = "inferq-error-code"
HEADER_ERROR = "inferq-error"
HEADER_ORIGIN_TOPIC = "inferq-origin-topic"
HEADER_ORIGIN_PARTITION = "inferq-origin-partition"
HEADER_ORIGIN_OFFSET = "inferq-origin-offset"

Outgoing = tuple[str, KafkaRecord]
Origin = tuple[Any, int]  # (partition, offset) of a fetched record

RESEND = Backoff(first_s=0.1, max_s=5.0)  # no limit: a result is never dropped


def encoded(topic: str, event: JobEvent) -> Outgoing:
    return topic, encode_event(event)


def dead_letter(record: Any, code: str, message: str) -> KafkaRecord:
    """The record untouched, with the reason and its origin added to its headers."""
    headers: Headers = [
        *(record.headers or ()),
        (HEADER_ERROR_CODE, code.encode()),
        (HEADER_ERROR, message.encode()),
        (HEADER_ORIGIN_TOPIC, str(record.topic).encode()),
        (HEADER_ORIGIN_PARTITION, str(record.partition).encode()),
        (HEADER_ORIGIN_OFFSET, str(record.offset).encode()),
    ]
    return KafkaRecord(record.key or b"", record.value or b"", headers)


class Delivery:
    def __init__(self, producer: AIOKafkaProducer, max_in_flight: int, tracker: OffsetTracker):
        self._producer = producer
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tracker = tracker
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, outgoing: list[Outgoing], origins: list[Origin]) -> None:
        """Send now (in order); acknowledge in the background, at most `max_in_flight` at once."""
        await self._slots.acquire()
        try:
            futures = await self._send(outgoing)
        except BaseException:
            self._slots.release()
            raise
        task = asyncio.create_task(self._settle(futures, outgoing, origins))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, outgoing: list[Outgoing]) -> list["asyncio.Future[Any]"]:
        # One `send` per record, not aiokafka's batch API: batches sent that way can be in
        # flight together for one partition, and the development broker was measured to
        # expose them out of order, so a consumer at the log end skipped records.
        return [
            await self._producer.send(topic, key=r.key or None, value=r.value, headers=r.headers)
            for topic, r in outgoing
        ]

    async def _settle(
        self, futures: list["asyncio.Future[Any]"], outgoing: list[Outgoing], origins: list[Origin]
    ) -> None:
        try:
            pauses = RESEND.pauses()
            while True:
                try:
                    await asyncio.gather(*futures)
                    break
                except KafkaError as exc:
                    pause = next(pauses)
                    log.warning(
                        "%d results not acknowledged (%s); again in %.1fs",
                        len(outgoing),
                        exc,
                        pause,
                    )
                    await asyncio.sleep(pause)
                    futures = await self._send(outgoing)
            for partition, offset in origins:
                self._tracker.finished(partition, offset)
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Wait until everything sent so far is acknowledged."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
