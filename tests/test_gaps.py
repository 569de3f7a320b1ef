"""The gap guard: a consumer that sees offsets jump asks once more from where it expected."""

from dataclasses import dataclass

from inferq.gaps import GapGuard


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
