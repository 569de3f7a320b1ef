"""Produce through aiokafka's batch API: records are appended to one batch per partition and
each batch has one future, which costs a third of aiokafka's `send` per record (measured:
13.4 vs 5.1 us of CPU per record). Partitions follow Kafka's own murmur2 of the key.
"""

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from schemas.codec import KafkaRecord

Outgoing = tuple[str, KafkaRecord]


class Partitions:
    """Which partition a key goes to, per topic (partition lists cached)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._lists: dict[str, list[int]] = {}
        self._partitioner = DefaultPartitioner()

    async def of(self, topic: str, key: bytes | None) -> int:
        partitions = self._lists.get(topic)
        if partitions is None:
            partitions = self._lists[topic] = sorted(await self._producer.partitions_for(topic))
        chosen: int = self._partitioner(key or None, partitions, partitions)
        return chosen


def _append(batch: Any, record: KafkaRecord) -> bool:
    appended = batch.append(
        timestamp=None, key=record.key or None, value=record.value, headers=record.headers
    )
    return appended is not None


class BatchSender:
    """Open batches per partition; `add` sends a batch once full, `send_open` sends the rest."""

    def __init__(self, producer: AIOKafkaProducer, partitions: Partitions) -> None:
        self._producer = producer
        self._partitions = partitions
        self._open: dict[tuple[str, int], Any] = {}
        self._lock = asyncio.Lock()  # a batch is appended to or sent, never both at once

    async def add(self, topic: str, record: KafkaRecord) -> "asyncio.Future[Any] | None":
        """Append a record; returns the future of a batch this had to send, if any."""
        async with self._lock:
            return await self._add(topic, record)

    async def _add(self, topic: str, record: KafkaRecord) -> "asyncio.Future[Any] | None":
        partition = await self._partitions.of(topic, record.key)
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[topic, partition] = self._producer.create_batch()
        if _append(batch, record):
            return None
        sent: asyncio.Future[Any] = await self._producer.send_batch(
            batch, topic, partition=partition
        )
        batch = self._open[topic, partition] = self._producer.create_batch()
        if not _append(batch, record):
            raise ValueError(f"a record of {len(record.value)} bytes does not fit a produce batch")
        return sent

    async def send_open(self) -> list["asyncio.Future[Any]"]:
        """Send every open batch; their futures resolve when the broker acknowledges them."""
        async with self._lock:
            open_batches, self._open = self._open, {}
            return [
                await self._producer.send_batch(batch, topic, partition=partition)
                for (topic, partition), batch in open_batches.items()
            ]

    async def send(self, outgoing: list[Outgoing]) -> list["asyncio.Future[Any]"]:
        """Send these records (and anything open) now."""
        futures = [
            f for topic, record in outgoing if (f := await self.add(topic, record)) is not None
        ]
        return futures + await self.send_open()
