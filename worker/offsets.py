"""Which offsets may be committed: per partition, everything before the first unfinished one.

Records finish out of order (batches of different shapes, retries); a commit must never
pass a record whose result is not acknowledged yet, or a crash would lose it.
"""

from collections import deque
from collections.abc import Iterable
from typing import Any

Partition = Any  # aiokafka's TopicPartition, or any hashable in tests


class OffsetTracker:
    def __init__(self) -> None:
        self._pending: dict[Partition, deque[int]] = {}
        self._done: dict[Partition, set[int]] = {}
        self._next: dict[Partition, int] = {}
        self._committed: dict[Partition, int] = {}

    def started(self, partition: Partition, offset: int) -> None:
        """A record was fetched; offsets of one partition must arrive in increasing order."""
        self._pending.setdefault(partition, deque()).append(offset)
        self._done.setdefault(partition, set())

    def finished(self, partition: Partition, offset: int) -> None:
        """The record's outcome is acknowledged by the broker."""
        pending = self._pending.get(partition)
        if pending is None:
            return  # the partition was revoked meanwhile
        done = self._done[partition]
        done.add(offset)
        while pending and pending[0] in done:
            done.discard(head := pending.popleft())
            self._next[partition] = head + 1

    @property
    def in_flight(self) -> int:
        """Records fetched whose outcome is not acknowledged yet."""
        return sum(len(p) for p in self._pending.values()) - sum(map(len, self._done.values()))

    def committable(self) -> dict[Partition, int]:
        """Offsets to commit now (the next offset to read), for partitions that moved on."""
        return {
            partition: offset
            for partition, offset in self._next.items()
            if self._committed.get(partition) != offset
        }

    def committed(self, offsets: dict[Partition, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Drop partitions this consumer no longer owns."""
        for partition in partitions:
            for table in (self._pending, self._done, self._next, self._committed):
                table.pop(partition, None)
