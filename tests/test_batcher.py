"""The micro-batcher on its own: no Kafka, no models."""

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from worker.batcher import Batcher


@dataclass(frozen=True)
class Item:
    name: str
    rows: int = 1
    shape: str = "a"
    row_limit: int | None = None

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.shape,)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def drain(batcher: Batcher[Item]) -> list[list[str]]:
    await batcher.close()
    made = []
    while (batch := await batcher.get()) is not None:
        made.append([item.name for item in batch])
    return made


async def test_a_full_batch_closes_at_once() -> None:
    batcher: Batcher[Item] = Batcher(max_batch_size=3, max_wait_ms=60_000, capacity=10)
    for name in "abc":
        await batcher.put(Item(name))
    async with asyncio.timeout(5):
        batch = await batcher.get()
    assert [item.name for item in batch or []] == ["a", "b", "c"]
    assert batcher.buffered == 0


async def test_a_batch_closes_when_its_first_job_waited_long_enough() -> None:
    clock = Clock()
    batcher: Batcher[Item] = Batcher(max_batch_size=8, max_wait_ms=50, capacity=10, clock=clock)
    await batcher.put(Item("a"))
    clock.now += 0.049
    await batcher.put(Item("b"))  # joins the open batch; its wait counts from "a"
    clock.now += 0.001
    await batcher.put(Item("c", shape="other"))
    async with asyncio.timeout(5):
        batch = await batcher.get()
    assert [item.name for item in batch or []] == ["a", "b"]
    assert batcher.buffered == 1
    assert await drain(batcher) == [["c"]]


async def test_a_lone_job_comes_out_after_its_wait_in_real_time() -> None:
    batcher: Batcher[Item] = Batcher(max_batch_size=8, max_wait_ms=5, capacity=10)
    await batcher.put(Item("a"))
    async with asyncio.timeout(5):
        batch = await batcher.get()
    assert [item.name for item in batch or []] == ["a"]


async def test_get_waits_for_a_put() -> None:
    batcher: Batcher[Item] = Batcher(max_batch_size=1, max_wait_ms=0, capacity=10)
    getter = asyncio.create_task(batcher.get())
    await asyncio.sleep(0)
    assert not getter.done()
    await batcher.put(Item("a"))
    async with asyncio.timeout(5):
        batch = await getter
    assert [item.name for item in batch or []] == ["a"]


async def test_rows_limits_and_unbatchable_jobs() -> None:
    batcher: Batcher[Item] = Batcher(max_batch_size=4, max_wait_ms=60_000, capacity=20)
    for item in [
        Item("a", 3),
        Item("b", 2),
        Item("c", 1),
        Item("big", 9),
        Item("s1", shape="s", row_limit=2),
        Item("s2", shape="s", row_limit=2),
        Item("s3", shape="s", row_limit=2),
        Item("u1", shape="u", row_limit=0),
        Item("u2", shape="u", row_limit=0),
    ]:
        await batcher.put(item)
    assert await drain(batcher) == [
        ["a"],
        ["b", "c"],
        ["big"],
        ["s1", "s2"],
        ["u1"],
        ["u2"],
        ["s3"],
    ]


async def test_put_waits_while_the_batcher_is_at_capacity() -> None:
    batcher: Batcher[Item] = Batcher(max_batch_size=2, max_wait_ms=60_000, capacity=2)
    await batcher.put(Item("a"))
    await batcher.put(Item("b"))
    blocked = asyncio.create_task(batcher.put(Item("c")))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert batcher.buffered == 2
    async with asyncio.timeout(5):
        assert [item.name for item in await batcher.get() or []] == ["a", "b"]
        await blocked
    assert batcher.buffered == 1
    assert await drain(batcher) == [["c"]]


async def test_a_closed_batcher_refuses_jobs() -> None:
    batcher: Batcher[Item] = Batcher(max_batch_size=2, max_wait_ms=0, capacity=2)
    await batcher.close()
    with pytest.raises(RuntimeError, match="batcher is closed"):
        await batcher.put(Item("a"))
    assert await batcher.get() is None


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch_size and capacity must be >= 1"):
        Batcher(max_batch_size=0, max_wait_ms=1, capacity=1)
