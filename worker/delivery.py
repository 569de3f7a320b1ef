"""Send results and dead letters; when the broker has acknowledged them, finish their records.

A failed send is a transient error: retried with exponential backoff and jitter
(`RESEND`) until it succeeds or the worker stops: records whose results are not
acknowledged are never committed, so another worker runs them again. A record refused
for what it is (too large) would be refused forever: it is replaced once by a smaller
record that says why (`worker.refused`).
"""

import asyncio
import logging
from typing import Any

from aiokafka.errors import KafkaError

from inferq.outbox import Outbox
from inferq.retry import Backoff
from schemas import JobEvent, KafkaRecord, encode_event
from worker.offsets import OffsetTracker
from worker.refused import is_permanent, replacement

log = logging.getLogger(__name__)

Outgoing = tuple[str, KafkaRecord]
Origin = tuple[Any, int]  # (partition, offset) of a fetched record

RESEND = Backoff(first_s=0.1, max_s=5.0)  # no limit: a passing error never drops a result
ROOM_WAIT_S = 40.0  # for room in a full batch (aiokafka's `send` waited its request timeout)


def encoded(topic: str, event: JobEvent) -> Outgoing:
    return topic, encode_event(event)


class Delivery:
    def __init__(self, outbox: Outbox, max_in_flight: int, tracker: OffsetTracker):
        self._outbox = outbox
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tracker = tracker
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, outgoing: list[Outgoing], origins: list[Origin]) -> None:
        """Send now (in order); acknowledge in the background, at most `max_in_flight` at once."""
        await self._slots.acquire()
        try:
            futures = await self._outbox.put(outgoing)
        except BaseException:
            self._slots.release()
            raise
        task = asyncio.create_task(self._settle(futures, outgoing, origins))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(
        self, futures: list["asyncio.Future[None]"], outgoing: list[Outgoing], origins: list[Origin]
    ) -> None:
        try:
            pauses = RESEND.pauses()
            while outgoing:
                answers = await asyncio.gather(*futures, return_exceptions=True)
                outgoing, error = _unacknowledged(outgoing, answers)
                if outgoing:
                    pause = next(pauses)
                    log.warning(
                        "%d records not acknowledged (%s); again in %.1fs",
                        len(outgoing),
                        error,
                        pause,
                    )
                    await asyncio.sleep(pause)
                    futures = await self._outbox.put(outgoing)
            for partition, offset in origins:
                self._tracker.finished(partition, offset)
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Wait until everything sent so far is acknowledged."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


def _unacknowledged(
    outgoing: list[Outgoing], answers: list[Any]
) -> tuple[list[Outgoing], BaseException | None]:
    """What to send again, and the last error: each record whose send failed, or what
    replaces a record refused for good (`worker.refused`)."""
    again: list[Outgoing] = []
    error: BaseException | None = None
    for (topic, record), answer in zip(outgoing, answers, strict=True):
        if not isinstance(answer, BaseException):
            continue
        if not isinstance(answer, KafkaError):
            raise answer  # a bug, not the broker
        error = answer
        if not is_permanent(answer):
            again.append((topic, record))
            continue
        instead = replacement(record, answer)
        log.error(
            "the broker refused a record for %s on %s for good (%s); %s",
            record.key.decode(errors="replace"),
            topic,
            answer,
            "sending a smaller record instead" if instead else "giving it up",
        )
        if instead is not None:
            again.append((topic, instead))
    return again, error
