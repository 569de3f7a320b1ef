"""The gap guard: a consumer that sees offsets jump asks once more from where it expected."""

import asyncio
from dataclasses import dataclass

from inferq.gaps import GapGuard, LostLogGuard, Reader
from tests.support import eventually


@dataclass(frozen=True)
class Record:
    offset: int


def records(*offsets: int) -> list[Record]:
    return [Record(o) for o in offsets]


def test_contiguous_records_pass() -> None:
    guard = GapGuard()
    assert guard.accept("p", records(5, 6, 7)) == (records(5, 6, 7), None)
    assert guard.accept("p", records(8, 9)) == (records(8, 9), None)


def test_a_jump_is_fetched_again_until_the_records_show() -> None:
    guard = GapGuard(attempts=3)
    guard.accept("p", records(0, 1))
    assert guard.accept("p", records(2, 3, 30, 31)) == (records(2, 3), 4)
    assert guard.accept("p", records(30, 31)) == ([], 4)  # still not there: ask again
    # the broker now shows the missing records: they follow on
    assert guard.accept("p", records(4, 5)) == (records(4, 5), None)
    assert guard.refetches == 2


def test_a_gap_that_stays_is_accepted_as_real() -> None:
    guard = GapGuard(attempts=2)
    guard.accept("p", records(5))
    assert guard.accept("p", records(9)) == ([], 6)
    assert guard.accept("p", records(9)) == ([], 6)
    assert guard.accept("p", records(9, 10)) == (records(9, 10), None)  # compaction, markers
    assert guard.accept("p", records(11)) == (records(11), None)


def test_partitions_are_separate_and_forgotten() -> None:
    guard = GapGuard()
    guard.accept("a", records(0))
    assert guard.accept("b", records(100)) == (records(100), None)
    guard.forget(["a"])
    assert guard.accept("a", records(50)) == (records(50), None)


class Consumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int]] = []

    def seek(self, partition: str, offset: int) -> None:
        self.seeks.append((partition, offset))


def test_follow_on_sends_the_consumer_back_on_a_jump() -> None:
    guard, consumer = GapGuard(), Consumer()
    assert guard.follow_on(consumer, "p", records(0, 1)) == records(0, 1)
    assert guard.follow_on(consumer, "p", records(2, 9)) == records(2)
    assert consumer.seeks == [("p", 3)]


class Positions:
    """What LostLogGuard asks of a consumer: assignment, log ends, positions, rewinding."""

    def __init__(self, positions: dict[str, int], ends: dict[str, int]) -> None:
        self.positions = positions
        self.ends = ends
        self.rewound: list[str] = []

    def assignment(self) -> list[str]:
        return list(self.positions)

    def highwater(self, partition: str) -> int | None:
        return self.ends.get(partition)

    async def position(self, partition: str) -> int:
        return self.positions[partition]

    async def seek_to_beginning(self, *partitions: str) -> None:
        self.rewound += partitions
        for partition in partitions:
            self.positions[partition] = 0


async def test_a_log_that_stays_behind_the_position_is_read_again() -> None:
    guard = LostLogGuard(rounds=3, after_s=0)
    consumer = Positions({"p": 50, "q": 7}, {"p": 2, "q": 7})
    assert await guard.rewind(consumer) == []
    assert await guard.rewind(consumer) == []
    assert await guard.rewind(consumer) == ["p"]
    assert (consumer.rewound, consumer.positions) == (["p"], {"p": 0, "q": 7})
    assert await guard.rewind(consumer) == []


async def test_a_log_end_that_catches_up_is_not_a_lost_log() -> None:
    guard, consumer = LostLogGuard(rounds=3, after_s=0), Positions({"p": 50}, {"p": 2})
    assert await guard.rewind(consumer) == []
    assert await guard.rewind(consumer) == []
    consumer.ends["p"] = 60  # the log end seen had only lagged behind
    assert await guard.rewind(consumer) == []
    consumer.ends["p"] = 2
    assert await guard.rewind(consumer) == []
    assert await guard.rewind(consumer) == []
    assert consumer.rewound == []


async def test_a_lost_log_is_found_while_other_partitions_bring_records() -> None:
    """Fetches that bring records of `q` are never empty: `p` is looked at all the same."""
    guard, consumer = LostLogGuard(rounds=3, after_s=0), Positions({"p": 50, "q": 7}, {"p": 2})
    assert await guard.rewind(consumer, busy={"q"}) == []
    assert await guard.rewind(consumer, busy={"q"}) == []
    assert await guard.rewind(consumer, busy={"q"}) == ["p"]
    assert consumer.rewound == ["p"]


async def test_a_busy_partition_is_not_lost() -> None:
    guard, consumer = LostLogGuard(rounds=2, after_s=0), Positions({"p": 50}, {"p": 2})
    assert await guard.rewind(consumer) == []
    assert await guard.rewind(consumer, busy={"p"}) == []  # it brought records: counts anew
    assert await guard.rewind(consumer) == []
    assert await guard.rewind(consumer) == ["p"]


async def test_a_lost_log_must_stay_lost_for_a_while_too() -> None:
    guard, consumer = LostLogGuard(rounds=2, after_s=3600), Positions({"p": 50}, {"p": 2})
    for _ in range(5):
        assert await guard.rewind(consumer) == []
    assert consumer.rewound == []


class Busy(Positions):
    """A consumer whose partition `q` brings a record at each fetch, and `p` none."""

    async def getmany(
        self, *partitions: str, timeout_ms: int, max_records: int | None = None
    ) -> dict[str, list[Record]]:
        offset = self.positions["q"]
        self.positions["q"] = self.ends["q"] = offset + 1
        return {"q": records(offset)}

    def seek(self, partition: str, offset: int) -> None:
        self.positions[partition] = offset


async def test_a_reader_finds_a_lost_log_while_another_partition_brings_records() -> None:
    """The worker, ingestion and webhook dispatch read through `Reader`: their fetches are
    never empty while `q` is busy, and `p`, whose log ends before its position, is read
    again all the same (after LOST_ROUNDS rounds over LOST_AFTER_S)."""
    reader, consumer = Reader(), Busy({"p": 50, "q": 0}, {"p": 2, "q": 0})
    seen: list[int] = []

    async def rewound() -> list[str] | None:
        accepted, lost = await reader.fetch(consumer, timeout_ms=100)
        seen.extend(r.offset for r in accepted["q"])
        return lost or None

    assert await eventually(rewound, within_s=10) == ["p"]
    assert consumer.rewound == ["p"]
    assert seen == list(range(len(seen)))  # every record of q, in order


class Resetting(Positions):
    """Partition `a` has no position yet (its reset waits on the broker): asking for it
    waits, as aiokafka's does; the others answer at once."""

    def assignment(self) -> list[str]:
        return ["a", *self.positions]

    async def position(self, partition: str) -> int:
        if partition == "a":
            await asyncio.Event().wait()
        return await super().position(partition)

    def highwater(self, partition: str) -> int | None:
        return 0 if partition == "a" else super().highwater(partition)


async def test_a_partition_without_a_position_hides_no_lost_log() -> None:
    guard, consumer = LostLogGuard(rounds=1, after_s=0), Resetting({"p": 50}, {"p": 2})
    async with asyncio.timeout(10):
        assert await guard.rewind(consumer) == ["p"]


class Rebalancing(Busy):
    """Once `armed`, a rebalance comes after the next fetch has returned, while the reader
    looks for lost logs: the listener tells the reader then, as aiokafka's would."""

    def __init__(self, reader: Reader, positions: dict[str, int], ends: dict[str, int]) -> None:
        super().__init__(positions, ends)
        self.reader = reader
        self.armed = False
        self._due = False

    async def getmany(
        self, *partitions: str, timeout_ms: int, max_records: int | None = None
    ) -> dict[str, list[Record]]:
        self._due, self.armed = self.armed, False
        return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)

    async def position(self, partition: str) -> int:
        if self._due:
            self._due = False
            self.reader.revoked(self.assignment())
        return await super().position(partition)


async def test_records_fetched_before_a_rebalance_are_left_for_their_new_owner() -> None:
    reader = Reader()
    consumer = Rebalancing(reader, {"p": 50, "q": 0}, {"p": 2, "q": 0})
    assert await reader.fetch(consumer, timeout_ms=100) == ({"q": records(0)}, [])
    consumer.armed = True
    assert await reader.fetch(consumer, timeout_ms=100) == ({}, [])
    assert reader.generation == 1
    # a fetch after the rebalance brings what the partition's position gives
    assert await reader.fetch(consumer, timeout_ms=100) == ({"q": records(2)}, [])
