"""Guard a consumer against skipped offsets.

Offsets of a partition are contiguous unless compaction or transaction markers removed
some. The development broker was measured to expose produce batches that were in flight
together out of order, so a consumer at the log end jumped past a batch (25 of 80,000
records, with aiokafka's batch API). A consumer that sees a jump asks once more from the
offset it expected; a gap still there the second time is accepted as real.
"""

from typing import Any


class GapGuard:
    def __init__(self) -> None:
        self._expected: dict[Any, int] = {}
        self._asked_again: set[tuple[Any, int]] = set()

    def accept(self, partition: Any, records: list[Any]) -> tuple[list[Any], int | None]:
        """The records that follow on without a gap, and the offset to fetch again from if
        a gap was found (seek there before the next fetch)."""
        expected = self._expected.get(partition, records[0].offset)
        for i, record in enumerate(records):
            if record.offset > expected and (partition, expected) not in self._asked_again:
                self._asked_again.add((partition, expected))
                self._expected[partition] = expected
                return records[:i], expected
            expected = record.offset + 1
        self._expected[partition] = expected
        return records, None

    def forget(self, partitions: Any) -> None:
        for partition in partitions:
            self._expected.pop(partition, None)
