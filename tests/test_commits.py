"""PeriodicCommits without a broker: a consumer that records its commits, a clock the
test moves."""

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from inferq.commits import PeriodicCommits

FAILED = "commit failed (%s); read again"


class Consumer:
    def __init__(self, held: set[str]) -> None:
        self.held = held
        self.commits: list[dict[Any, int]] = []
        self.refuse = 0  # commits still to refuse
        self.hang = False

    def assignment(self) -> frozenset[str]:
        return frozenset(self.held)

    async def commit(self, offsets: dict[Any, int]) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.refuse:
            self.refuse -= 1
            raise KafkaConnectionError("the broker went away")
        self.commits.append(dict(offsets))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def commits_of(consumer: Consumer, clock: Clock) -> PeriodicCommits:
    return PeriodicCommits(consumer, 200, FAILED, clock=clock)


async def test_a_commit_waits_for_the_interval_and_carries_the_latest_offsets() -> None:
    consumer, clock = Consumer({"p0", "p1"}), Clock()
    commits = commits_of(consumer, clock)
    commits.finished({"p0": 3})
    commits.finished({"p0": 5, "p1": 1})
    clock.now += 0.199
    await commits.when_due()
    assert consumer.commits == []
    clock.now += 0.001
    await commits.when_due()
    assert consumer.commits == [{"p0": 5, "p1": 1}]
    clock.now += 0.2
    await commits.when_due()  # nothing new: no request
    assert consumer.commits == [{"p0": 5, "p1": 1}]


async def test_partitions_no_longer_held_or_read_again_are_not_committed() -> None:
    consumer, clock = Consumer({"p0", "p1", "p2"}), Clock()
    commits = commits_of(consumer, clock)
    commits.finished({"p0": 4, "p1": 7, "p2": 9})
    consumer.held = {"p0", "p2"}  # p1 moved to another member
    commits.forget(["p2"])  # p2's log was lost: it is read from its start again
    await commits.now()
    assert consumer.commits == [{"p0": 4}]


async def test_offsets_whose_commit_failed_go_with_the_next_commit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer, clock = Consumer({"p0", "p1"}), Clock()
    commits = commits_of(consumer, clock)
    commits.finished({"p0": 4, "p1": 2})
    consumer.refuse = 1
    await commits.now()
    assert consumer.commits == []
    assert [r.getMessage() for r in caplog.records] == [
        "commit failed (KafkaConnectionError: the broker went away); read again"
    ]
    commits.finished({"p0": 6})
    await commits.now()
    assert consumer.commits == [{"p0": 6, "p1": 2}]


async def test_the_last_commit_gives_up_on_a_broker_that_does_not_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer, clock = Consumer({"p0"}), Clock()
    commits = commits_of(consumer, clock)
    commits.finished({"p0": 1})
    consumer.hang = True
    await commits.last(0.05)
    assert consumer.commits == []
    assert [r.getMessage() for r in caplog.records] == [
        "commit failed (no answer within 0.05 s); read again"
    ]
