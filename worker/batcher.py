"""The micro-batcher: compatible jobs wait together until a batch is full or old enough.

A batch closes at `max_batch_size` rows or `max_wait_ms` after its first job arrived
(monotonic clock), whichever comes first. Only jobs with equal signatures (model,
version, datatypes and non-batch dimensions) share a batch. `put` waits while
`capacity` jobs are buffered, which stops the fetcher: that is the backpressure.
No Kafka here: the class is driven by plain calls and tested without a transport.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar


class Batchable(Protocol):
    @property
    def signature(self) -> tuple[Any, ...]: ...

    @property
    def rows(self) -> int: ...

    @property
    def row_limit(self) -> int | None:
        """The model's own cap on rows per batch (0: it cannot batch), or None for none."""


J = TypeVar("J", bound=Batchable)


@dataclass
class _Open(Generic[J]):
    opened_at: float
    jobs: list[J] = field(default_factory=list)
    rows: int = 0


class Batcher(Generic[J]):
    def __init__(
        self,
        max_batch_size: int,
        max_wait_ms: float,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch_size < 1 or capacity < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and capacity must be >= 1, max_wait_ms >= 0")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.capacity = capacity
        self._clock = clock
        self._open: dict[tuple[Any, ...], _Open[J]] = {}
        self._ready: list[list[J]] = []
        self._buffered = 0
        self._closed = False
        self._changed = asyncio.Condition()

    @property
    def buffered(self) -> int:
        """Jobs put and not yet taken by `get`."""
        return self._buffered

    async def put(self, job: J) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._buffered < self.capacity or self._closed)
            if self._closed:
                raise RuntimeError("batcher is closed")
            self._add(job)
            self._changed.notify_all()

    def _limit(self, job: J) -> int:
        own = job.row_limit
        return self.max_batch_size if own is None else min(own, self.max_batch_size)

    def _add(self, job: J) -> None:
        self._buffered += 1
        signature, rows, limit = job.signature, job.rows, self._limit(job)
        batch = self._open.get(signature)
        if batch is not None and batch.rows + rows > limit:
            self._ready.append(self._open.pop(signature).jobs)
            batch = None
        if batch is None:
            batch = self._open[signature] = _Open(self._clock())
        batch.jobs.append(job)
        batch.rows += rows
        if batch.rows >= limit:
            self._ready.append(self._open.pop(signature).jobs)

    def _expire(self) -> float | None:
        """Close batches that waited long enough; return seconds until the next one is due."""
        now = self._clock()
        due: float | None = None
        for signature, batch in list(self._open.items()):
            left = batch.opened_at + self.max_wait_s - now
            if left <= 0 or self._closed:
                self._ready.append(self._open.pop(signature).jobs)
            elif due is None or left < due:
                due = left
        return due

    async def get(self) -> list[J] | None:
        """The next closed batch, oldest first; None once closed and empty."""
        async with self._changed:
            while True:
                due = self._expire()
                if self._ready:
                    batch = self._ready.pop(0)
                    self._buffered -= len(batch)
                    self._changed.notify_all()
                    return batch
                if self._closed:
                    return None
                try:
                    async with asyncio.timeout(due):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    async def close(self) -> None:
        """Stop taking jobs; what is buffered comes out of `get` at once, then None."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()
