"""Ingest the results topic into the store, and tell waiters what changed.

`caught_up(since)` is the read-your-writes barrier: it returns once a fetch that began
after `since` found nothing new, so every event acknowledged before `since` is stored.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer

from inferq.commits import PeriodicCommits, consume_in_steps
from inferq.fetching import at_log_ends
from inferq.gaps import Reader
from results_api.persist import stubbornly
from results_api.restart import restarting
from results_api.settings import ApiSettings
from results_api.store import Encoded, ResultStore
from results_api.waiters import JobWaiters
from schemas import DecodeError, decode_event_head, supersedes

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
T = TypeVar("T")


class Ingestor:
    def __init__(self, settings: ApiSettings, store: ResultStore, waiters: JobWaiters) -> None:
        self._settings = settings
        self._store = store
        self._waiters = waiters
        self._reader = Reader()
        self._caught_up_at = float("-inf")
        self._progress = asyncio.Condition()
        self.assigned = False
        self.ingested = 0
        self.skipped = 0
        # An empty answer proves the log end only if it outlasted a fetch round trip.
        self._fetch_timeout_ms = 2 * settings.fetch_max_wait_ms + 100

    async def run(self, stop: asyncio.Event) -> None:
        """Ingest until `stop`; after an unexpected error (a store error that is not an
        outage, say), start over from the committed offsets."""
        await restarting(self._consume, stop, "results ingestion", self._unassigned)

    def _unassigned(self) -> None:
        self.assigned = False

    async def _consume(self, stop: asyncio.Event) -> None:
        s = self._settings
        await consume_in_steps(
            s,
            s.topics.results,
            s.ingest_group_id,
            lambda consumer, commits: self._step(consumer, commits, stop),
            stop,
            "ingest commit failed (%s); events will be applied again",
        )

    async def _step(
        self, consumer: AIOKafkaConsumer, commits: PeriodicCommits, stop: asyncio.Event
    ) -> None:
        started = time.monotonic()
        accepted, lost = await self._reader.fetch(consumer, timeout_ms=self._fetch_timeout_ms)
        self.assigned = bool(consumer.assignment())
        commits.forget(lost)
        if not accepted:
            # Nothing came: the log ends are reached, unless a partition has no position
            # yet (just assigned, its committed offset being read), where nothing was read.
            if self.assigned and await at_log_ends(consumer):
                async with self._progress:
                    self._caught_up_at = started
                    self._progress.notify_all()
            return
        # Retention counts from when the events were written (to the end of their minute):
        # events read again (a new ingest group, offsets lost) do not come back for a
        # full retention, nor at all once past it.
        groups, decoded = kept_by_minute(accepted.values())
        self.skipped += sum(map(len, accepted.values())) - decoded
        for minute, events in groups.items():
            if not await self._apply(events, (minute + 1) * MINUTE_MS / 1000, stop):
                return  # stopped: the events are read again after a restart
        self.ingested += decoded
        commits.finished({tp: rs[-1].offset + 1 for tp, rs in accepted.items() if rs})

    async def _apply(self, events: list[Encoded], written: float, stop: asyncio.Event) -> bool:
        """Store the events written at `written` (unix seconds) and tell their waiters;
        False when stopped first."""
        if not await stubbornly(
            lambda: self._store.apply_encoded(events, at=written), stop, "results ingestion"
        ):
            return False
        self._waiters.notify(job_id for job_id, _, _ in events)
        return True

    @property
    def refetches(self) -> int:
        return self._reader.gaps.refetches

    async def caught_up(self, since: float) -> None:
        """Wait until ingestion has reached the log end as of `since` (a monotonic time)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._caught_up_at >= since)


def decode_head(record: Any) -> Encoded | None:
    """The job id and status of a record, beside its JSON; None for an undecodable record,
    logged (it cannot be stored, and stopping would stop every job after it)."""
    try:
        head = decode_event_head(record.value, record.headers)
    except DecodeError as exc:
        log.error(
            "skipping undecodable result at %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
        return None
    return head.job_id, head.status, record.value


def kept_by_minute(fetched: Iterable[list[Any]]) -> tuple[dict[int, list[Encoded]], int]:
    """Per job, the one event of a fetch that the store would keep, picked in log order
    (a job's events share a partition), grouped by the minute its record was written
    (minutes since the epoch); and how many records could be decoded."""
    decoded = [
        (event, record.timestamp // MINUTE_MS)
        for records in fetched
        for record in records
        if (event := decode_head(record)) is not None
    ]
    groups: dict[int, list[Encoded]] = {}
    for event, minute in winners(decoded):
        groups.setdefault(minute, []).append(event)
    return groups, len(decoded)


def winners(events: Iterable[tuple[Encoded, T]]) -> list[tuple[Encoded, T]]:
    """Per job, the one event of a fetch that the store would keep (a burst often brings a
    job's queued and terminal events together: only the terminal one is written), with
    what came with it."""
    best: dict[str, tuple[Encoded, T]] = {}
    for event, tag in events:
        kept = best.get(event[0])
        if kept is None or supersedes(event[1], kept[0][1]):
            best[event[0]] = (event, tag)
    return list(best.values())
