"""A model's backlog: the consumer lag of its worker group on its request topic.

Lag is measured as Kafka tools measure it: the log end of each partition (ListOffsets)
less the group's committed offset (the log start where the group has committed nothing).
Each model's figure is kept for `refresh_s`, so a burst of submits costs four broker
requests a second, not four per request: submits that find it stale share one
measurement, and a measurement that failed is not tried again before `refresh_s`
either (a broker that does not answer would hold every submit for a request timeout).
On Apache Kafka the figure is exact; the development broker answers the log end as of
the last produce batch's first record, so there it can be short by less than one batch
per partition.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from schemas.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Measured:
    lag: int | None  # None: it could not be measured
    at: float


class Admin(Protocol):
    """What this asks of an AIOKafkaAdminClient."""

    async def describe_topics(self, topics: list[str]) -> list[Any]: ...

    async def list_consumer_group_offsets(self, group_id: str, *, partitions: Any) -> Any: ...


class Offsets(Protocol):
    """What this asks of an AIOKafkaConsumer."""

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[Any, int]: ...

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[Any, int]: ...


class Backlog:
    def __init__(
        self,
        admin: Admin,
        offsets: Offsets,
        topics: Topics,
        refresh_s: float,
    ) -> None:
        self._admin = admin
        self._offsets = offsets  # a consumer without a group: only asked for offsets
        self._topics = topics
        self._refresh_s = refresh_s
        self._measured: dict[str, _Measured] = {}
        self._measuring: dict[str, asyncio.Task[int | None]] = {}

    async def of(self, model: str) -> int | None:
        """Jobs of `model` not yet committed by its workers; None if it cannot be measured."""
        known = self._measured.get(model)
        if known is not None and time.monotonic() - known.at < self._refresh_s:
            return known.lag
        task = self._measuring.get(model)
        if task is None:
            task = self._measuring[model] = asyncio.create_task(self._remeasure(model))
            task.add_done_callback(lambda _: self._measuring.pop(model, None))
        return await asyncio.shield(task)  # a submit that gives up leaves it to the others

    async def _remeasure(self, model: str) -> int | None:
        lag: int | None
        try:
            lag = await self._measure(model)
        except KafkaError as exc:
            log.warning("cannot measure the backlog of %s: %s", model, exc)
            lag = None
        self._measured[model] = _Measured(lag, time.monotonic())
        return lag

    async def _measure(self, model: str) -> int:
        topic = self._topics.requests(model)
        described = await self._admin.describe_topics([topic])
        partitions = [
            TopicPartition(topic, p["partition"]) for d in described for p in d["partitions"]
        ]
        ends = await self._offsets.end_offsets(partitions)
        starts = await self._offsets.beginning_offsets(partitions)
        committed = await self._admin.list_consumer_group_offsets(
            self._topics.worker_group(model), partitions=partitions
        )
        lag = 0
        for partition in partitions:
            done = committed[partition].offset if partition in committed else -1
            lag += max(0, ends[partition] - max(done, starts[partition]))
        return lag
