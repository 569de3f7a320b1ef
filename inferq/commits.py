"""Offsets of finished records, committed at most every `commit_interval_ms`.

A commit is a broker round trip that costs the broker and the committer CPU: one after
every fetch, when records come one at a time, is a commit per record (at 100 jobs/s the
results API's ingestion made two a job; the README's `INFERQ_COMMIT_INTERVAL_MS` gives
what dropping them saved). Committing less often only means that a restart reads the
events of the last interval again, which the consumers that use this (results
ingestion, webhook dispatch) apply idempotently.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from inferq.connections import consumer_options
from inferq.settings import ProcessSettings

log = logging.getLogger(__name__)


class Committer(Protocol):
    """What this needs of an AIOKafkaConsumer."""

    def assignment(self) -> Any: ...

    async def commit(self, offsets: dict[Any, int]) -> None: ...


class PeriodicCommits:
    def __init__(
        self,
        consumer: Committer,
        interval_ms: int,
        failed: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`failed`: the warning logged when a commit fails, `%s` standing for the error."""
        self._consumer = consumer
        self._interval_s = interval_ms / 1000
        self._failed = failed
        self._clock = clock
        self._pending: dict[Any, int] = {}
        self._committed_at = clock()

    def finished(self, offsets: dict[Any, int]) -> None:
        """Every record before these offsets (per partition) is done with."""
        self._keep(offsets)

    def forget(self, partitions: Iterable[Any]) -> None:
        """Drop what is pending for partitions read again from their start."""
        for partition in partitions:
            self._pending.pop(partition, None)

    async def when_due(self) -> None:
        """Commit if the last commit is an interval old."""
        if self._clock() - self._committed_at >= self._interval_s:
            await self.now()

    async def now(self) -> None:
        """Commit what is finished on the partitions this consumer still holds; offsets of
        partitions that moved away are dropped (their new owner reads those records
        again). Offsets whose commit failed are kept for the next one."""
        self._committed_at = self._clock()
        held = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in self._pending.items() if tp in held}
        self._pending.clear()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning(self._failed, exc)
            self._keep(offsets)

    async def last(self, within_s: float) -> None:
        """The commit when stopping, given up after `within_s`: aiokafka retries a commit
        for as long as it finds no group coordinator, and a broker that does not answer
        must not hold the stop (what was not committed is read again after a restart)."""
        try:
            async with asyncio.timeout(within_s):
                await self.now()
        except TimeoutError:
            log.warning(self._failed, f"no answer within {within_s:g} s")

    def _keep(self, offsets: dict[Any, int]) -> None:
        for partition, offset in offsets.items():
            self._pending[partition] = max(offset, self._pending.get(partition, offset))


async def consume_in_steps(
    settings: ProcessSettings,
    topic: str,
    group_id: str,
    step: Callable[[AIOKafkaConsumer, PeriodicCommits], Awaitable[None]],
    stop: asyncio.Event,
    failed: str,
) -> None:
    """Read `topic` in `group_id` with a consumer of its own, running `step` (a fetch and
    what follows) until `stop`; what the steps finished is committed every
    `commit_interval_ms` and once more at the end, given up after the session timeout
    (past it the group has let this member go anyway). `failed`: as for PeriodicCommits."""
    consumer = AIOKafkaConsumer(topic, **consumer_options(settings, group_id))
    await consumer.start()
    try:
        commits = PeriodicCommits(consumer, settings.commit_interval_ms, failed)
        while not stop.is_set():
            await step(consumer, commits)
            await commits.when_due()
        await commits.last(settings.session_timeout_ms / 1000)
    finally:
        await consumer.stop()
