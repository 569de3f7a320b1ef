"""Produce result events and dead letters, and wait until the broker acknowledges them."""

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas import JobEvent, KafkaRecord, encode_event
from schemas.codec import Headers
from schemas.topics import Topics

HEADER_ERROR_CODE = "inferq-error-code"
HEADER_ERROR = "inferq-error"
HEADER_ORIGIN_TOPIC = "inferq-origin-topic"
HEADER_ORIGIN_PARTITION = "inferq-origin-partition"
HEADER_ORIGIN_OFFSET = "inferq-origin-offset"


class Publisher:
    def __init__(self, producer: AIOKafkaProducer, topics: Topics) -> None:
        self._producer = producer
        self._topics = topics
        self._pending: list[asyncio.Future[Any]] = []

    async def event(self, event: JobEvent) -> None:
        await self._send(self._topics.results, encode_event(event))

    async def dead_letter(self, record: Any, code: str, message: str) -> None:
        """Forward an undecodable record untouched, with the reason and its origin in headers."""
        headers: Headers = [
            *(record.headers or ()),
            (HEADER_ERROR_CODE, code.encode()),
            (HEADER_ERROR, message.encode()),
            (HEADER_ORIGIN_TOPIC, str(record.topic).encode()),
            (HEADER_ORIGIN_PARTITION, str(record.partition).encode()),
            (HEADER_ORIGIN_OFFSET, str(record.offset).encode()),
        ]
        letter = KafkaRecord(record.key or b"", record.value or b"", headers)
        await self._send(self._topics.dlq, letter)

    async def _send(self, topic: str, record: KafkaRecord) -> None:
        future = await self._producer.send(
            topic, key=record.key or None, value=record.value, headers=record.headers
        )
        self._pending.append(future)

    async def acknowledged(self) -> None:
        """Wait until every record sent so far is acknowledged; raises if any failed."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
