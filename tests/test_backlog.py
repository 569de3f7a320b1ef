"""The backlog a submit checks: measured once per refresh, whoever asks, and a failed
measurement is not repeated by every submit (the API's 429 itself: tests/test_lifecycle.py)."""

import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.structs import OffsetAndMetadata

from results_api.backlog import Backlog
from schemas.topics import Topics

TOPICS = Topics("t")
TOPIC = TOPICS.requests("m")
PARTITIONS = [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)]


class Broker:
    """Answers as an admin client and an offsets consumer would; `slow` holds the
    answers, `down` fails them; counts the measurements."""

    def __init__(self) -> None:
        self.measured = 0
        self.slow = asyncio.Event()
        self.slow.set()
        self.down: KafkaError | None = None

    async def describe_topics(self, topics: list[str]) -> list[Any]:
        self.measured += 1
        await self.slow.wait()
        if self.down is not None:
            raise self.down
        return [{"partitions": [{"partition": 0}, {"partition": 1}]}]

    async def list_consumer_group_offsets(self, group_id: str, *, partitions: Any) -> Any:
        return {PARTITIONS[0]: OffsetAndMetadata(7, "")}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[Any, int]:
        return {PARTITIONS[0]: 10, PARTITIONS[1]: 5}

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[Any, int]:
        return {PARTITIONS[0]: 0, PARTITIONS[1]: 1}


async def test_submits_that_find_the_figure_stale_share_one_measurement() -> None:
    broker = Broker()
    backlog = Backlog(broker, broker, TOPICS, refresh_s=3600)
    broker.slow.clear()
    asking = [asyncio.create_task(backlog.of("m")) for _ in range(5)]
    await asyncio.sleep(0)  # each has asked
    broker.slow.set()
    assert await asyncio.gather(*asking) == [7] * 5  # 10 - 7, and 5 - 1 (nothing committed)
    assert await backlog.of("m") == 7
    assert broker.measured == 1


async def test_a_failed_measurement_waits_for_the_next_refresh() -> None:
    broker = Broker()
    broker.down = KafkaTimeoutError("no answer")
    cached = Backlog(broker, broker, TOPICS, refresh_s=3600)
    assert [await cached.of("m") for _ in range(3)] == [None, None, None]
    assert broker.measured == 1
    fresh = Backlog(broker, broker, TOPICS, refresh_s=0)
    assert await fresh.of("m") is None
    broker.down = None
    assert await fresh.of("m") == 7
    assert broker.measured == 3


async def test_a_submit_that_gives_up_leaves_the_measurement_to_the_others() -> None:
    broker = Broker()
    backlog = Backlog(broker, broker, TOPICS, refresh_s=3600)
    broker.slow.clear()
    first = asyncio.create_task(backlog.of("m"))
    second = asyncio.create_task(backlog.of("m"))
    await asyncio.sleep(0)
    first.cancel()
    broker.slow.set()
    assert await second == 7
    assert broker.measured == 1
