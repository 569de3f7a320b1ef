"""Offsets of finished records, committed at most every `commit_interval_ms`.

A commit is a broker round trip: one per fetch costs the broker and the consumer about as
much CPU as the fetch itself when records come one at a time. Committing less often only
means that a restart reads the events of the last interval again, which the consumers
that use this (results ingestion, webhook dispatch) apply idempotently.
"""

import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


class PeriodicCommits:
    def __init__(self, consumer: AIOKafkaConsumer, interval_ms: int, failed: str) -> None:
        """`failed`: the warning logged when a commit fails, `%s` standing for the error."""
        self._consumer = consumer
        self._interval_s = interval_ms / 1000
        self._failed = failed
        self._pending: dict[Any, int] = {}
        self._committed_at = time.monotonic()

    def finished(self, offsets: dict[Any, int]) -> None:
        """Every record before these offsets (per partition) is done with."""
        self._pending.update(offsets)

    def forget(self, partitions: list[Any]) -> None:
        """Drop what is pending for partitions read again from their start."""
        for partition in partitions:
            self._pending.pop(partition, None)

    async def when_due(self) -> None:
        """Commit if the last commit is an interval old."""
        if time.monotonic() - self._committed_at >= self._interval_s:
            await self.now()

    async def now(self) -> None:
        """Commit what is finished on the partitions this consumer still holds; offsets of
        partitions that moved away are dropped (their new owner reads those records
        again)."""
        self._committed_at = time.monotonic()
        held = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in self._pending.items() if tp in held}
        self._pending.clear()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning(self._failed, exc)
