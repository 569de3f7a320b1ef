"""Guard a consumer against skipped offsets.

Offsets of a partition are contiguous unless compaction or transaction markers removed
some. The development broker was measured to expose produce batches that were in flight
together out of order, so that a consumer at the log end jumped past a batch: 25 of
80,000 records with aiokafka's batch API, and still a few jumps per million records with
one `send` per record. A consumer that sees a jump fetches again from the offset it
expected, up to `attempts` times (each a fetch round later); a gap still there after that
is accepted as real.

The other way round, a log that now ends before the consumer's position has lost its
records (the broker restarted empty): the consumer reads it again from its start.
"""

import logging
import time
from collections.abc import Collection
from typing import Any

from inferq.fetching import getmany, positions

log = logging.getLogger(__name__)

ATTEMPTS = 50  # about a second of fetch rounds before a gap is taken as real


class GapGuard:
    def __init__(self, attempts: int = ATTEMPTS) -> None:
        self._attempts = attempts
        self._expected: dict[Any, int] = {}
        self._tries: dict[tuple[Any, int], int] = {}
        self.refetches = 0  # fetches asked again because offsets jumped

    def accept(self, partition: Any, records: list[Any]) -> tuple[list[Any], int | None]:
        """The records that follow on without a gap, and the offset to fetch again from if
        a gap was found (seek there before the next fetch)."""
        expected = self._expected.get(partition, records[0].offset)
        for i, record in enumerate(records):
            if record.offset > expected:
                tries = self._tries.get((partition, expected), 0)
                if tries < self._attempts:
                    self._tries[partition, expected] = tries + 1
                    self._expected[partition] = expected
                    self.refetches += 1
                    return records[:i], expected
                del self._tries[partition, expected]
            expected = record.offset + 1
        self._expected[partition] = expected
        self._tries = {
            k: v for k, v in self._tries.items() if k[0] != partition or k[1] >= expected
        }
        return records, None

    def follow_on(self, consumer: Any, partition: Any, records: list[Any]) -> list[Any]:
        """The records to process now; on a jump, `consumer` is sent back to fetch again."""
        accepted, again = self.accept(partition, records)
        if again is not None:
            log.warning("offsets of %s jump past %d: fetching again", partition, again)
            consumer.seek(partition, again)
        return accepted

    def forget(self, partitions: Any) -> None:
        for partition in partitions:
            self._expected.pop(partition, None)


LOST_ROUNDS = 10  # fetch rounds in a row a lost log must stay lost...
LOST_AFTER_S = 1.0  # ...over at least this long


class LostLogGuard:
    """Partitions whose log now ends before this consumer's position (the broker lost its
    data: a development broker that restarted, or a topic deleted and created again) are
    read again from their start. The log end seen can lag behind the records already
    read for a moment, so a partition counts as lost only after `rounds` fetch rounds in a
    row, over `after_s` seconds at least, all saw it so. Every round counts, not only the
    empty ones: while other partitions bring records, fetches are never empty, and a lost
    log among them would stay unread."""

    def __init__(self, rounds: int = LOST_ROUNDS, after_s: float = LOST_AFTER_S) -> None:
        self._rounds = rounds
        self._after_s = after_s
        self._seen: dict[Any, tuple[int, float]] = {}  # rounds seen lost, since (monotonic)

    async def rewind(self, consumer: Any, busy: Collection[Any] = ()) -> list[Any]:
        """Call after each fetch, with the partitions it brought records of (`busy`: not
        lost); returns the partitions sent back to their start, so the caller can forget
        their state."""
        lost = []
        now = time.monotonic()
        ends = {p: consumer.highwater(p) for p in consumer.assignment() if p not in busy}
        # a partition without a position (being reset) is not waited for: not lost yet
        at = await positions(consumer, [p for p, end in ends.items() if end is not None], 0)
        for partition in consumer.assignment():
            end, position = ends.get(partition), at.get(partition)
            if end is None or position is None or position <= end:
                self._seen.pop(partition, None)
                continue
            rounds, since = self._seen.get(partition, (0, now))
            if rounds + 1 >= self._rounds and now - since >= self._after_s:
                self._seen.pop(partition, None)
                lost.append(partition)
            else:
                self._seen[partition] = (rounds + 1, since)
        if lost:
            log.warning(
                "the log of %s ends before this consumer's position: reading it again", lost
            )
            await consumer.seek_to_beginning(*lost)
        return lost


class Reader:
    """The fetches of one consumer, guarded both ways: records that jump past offsets are
    fetched again (`GapGuard`), logs the broker lost are read again from their start
    (`LostLogGuard`), and records the client cannot parse are read around
    (`inferq.fetching`)."""

    def __init__(self) -> None:
        self.gaps = GapGuard()
        self._lost_logs = LostLogGuard()
        self.generation = 0  # rebalances told by `revoked`

    def revoked(self, partitions: Any) -> None:
        """Call from the rebalance listener's `on_partitions_revoked`, first thing."""
        self.generation += 1
        self.gaps.forget(partitions)

    async def fetch(
        self, consumer: Any, *, timeout_ms: int, max_records: int | None = None
    ) -> tuple[dict[Any, list[Any]], list[Any]]:
        """The records to process now, by partition, and the partitions sent back to their
        start (whose state the caller forgets). Records of an assignment that a rebalance
        (told by `revoked`) ended while this ran are left out: the partitions' positions
        were reset to their committed offsets, so whoever holds them reads those again."""
        fetched = await getmany(
            consumer,
            timeout_ms=timeout_ms,
            max_records=max_records,
            generation=lambda: self.generation,
        )
        generation = self.generation
        lost = await self._lost_logs.rewind(consumer, busy=fetched)
        self.gaps.forget(lost)
        if self.generation != generation:
            return {}, lost
        assigned = consumer.assignment()  # a partition revoked meanwhile is not ours to read
        accepted = {
            tp: self.gaps.follow_on(consumer, tp, rs)
            for tp, rs in fetched.items()
            if tp in assigned
        }
        return accepted, lost
