"""The jobs cancelled on request, read from `<prefix>.cancels` by every worker process.

Each worker reads the whole topic without a consumer group (a cancellation must reach
whichever worker holds the job's partition, now or after a rebalance) and keeps the most
recent `capacity` job ids. A worker starts serving only once it has read the topic up to
its end, so a job cancelled before the worker started is never run.

This reader's fetches wait up to `CANCELS_FETCH_WAIT_MS`, not `fetch_max_wait_ms`: an idle
fetch every 5 ms costs a tenth of a core in the worker and as much in the development
broker, and a cancellation seen 100 ms later only risks running a job whose `cancelled`
result is already final (the results store never lets a later event replace it).
"""

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from aiokafka import AIOKafkaConsumer

from inferq.gaps import Reader
from schemas import DecodeError, decode_cancel

log = logging.getLogger(__name__)

CANCELS_FETCH_WAIT_MS = 100


class Cancellations:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.caught_up = asyncio.Event()

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def add(self, job_id: str) -> None:
        self._ids[job_id] = None
        self._ids.move_to_end(job_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)

    async def follow(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Read cancellations until `stop` is set; `caught_up` is set at the log end."""
        reader = Reader()
        while not stop.is_set():
            fetched, _ = await reader.fetch(consumer, timeout_ms=100)
            for records in fetched.values():
                for record in records:
                    self._take(record)
            if not self.caught_up.is_set() and await _at_end(consumer):
                self.caught_up.set()

    def _take(self, record: Any) -> None:
        try:
            self.add(decode_cancel(record.value, record.headers).job_id)
        except DecodeError as exc:
            log.error(
                "skipping undecodable cancellation at %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )


async def _at_end(consumer: AIOKafkaConsumer) -> bool:
    """Whether every assigned partition has been read up to its high watermark."""
    partitions = consumer.assignment()
    if not partitions:
        return False
    for partition in partitions:
        end = consumer.highwater(partition)
        if end is None or await consumer.position(partition) < end:
            return False
    return True
