"""The catalog a submit checks: one topic listing at a time, whoever asks, and a failed
listing raises to each submit that waited for it and is not kept."""

import asyncio

import pytest
from aiokafka.errors import KafkaError, KafkaTimeoutError

from results_api.catalog import ModelCatalog
from schemas.topics import Topics

TOPICS = Topics("t")


class Broker:
    """Answers `list_topics` as an admin client would; `slow` holds the answers, `down`
    fails them; counts the listings."""

    def __init__(self, *models: str) -> None:
        self.topics = [TOPICS.requests(m) for m in models]
        self.listed = 0
        self.slow = asyncio.Event()
        self.slow.set()
        self.down: KafkaError | None = None

    async def list_topics(self) -> list[str]:
        self.listed += 1
        await self.slow.wait()
        if self.down is not None:
            raise self.down
        return list(self.topics)


async def _asking(catalog: ModelCatalog, models: list[str]) -> list[asyncio.Task[bool]]:
    """`served` of each model, each in a task of its own that has asked by the return."""
    asking = [asyncio.create_task(catalog.served(m)) for m in models]
    await asyncio.sleep(0)  # each has asked
    return asking


async def test_concurrent_submits_share_one_listing() -> None:
    broker = Broker("m", "other")
    catalog = ModelCatalog(broker, TOPICS, refresh_s=3600)
    broker.slow.clear()
    asking = await _asking(catalog, ["m", "m", "other", "unknown", "m"])
    broker.slow.set()
    assert await asyncio.gather(*asking) == [True, True, True, False, True]
    assert broker.listed == 1
    assert [await catalog.served(m) for m in ("m", "other", "unknown")] == [True, True, False]
    assert broker.listed == 1  # known for good, or listed less than refresh_s ago


async def test_a_failed_listing_raises_to_each_waiter_and_is_not_kept() -> None:
    broker = Broker("m")
    catalog = ModelCatalog(broker, TOPICS, refresh_s=3600)
    broker.slow.clear()
    broker.down = KafkaTimeoutError("no answer")
    asking = await _asking(catalog, ["m"] * 5)
    broker.slow.set()
    failed = await asyncio.gather(*asking, return_exceptions=True)
    assert all(f is broker.down for f in failed), failed
    assert broker.listed == 1
    broker.down = None
    assert await catalog.served("m") is True
    assert broker.listed == 2


async def test_a_submit_that_gives_up_leaves_the_listing_to_the_others() -> None:
    broker = Broker("m")
    catalog = ModelCatalog(broker, TOPICS, refresh_s=3600)
    broker.slow.clear()
    first, second = await _asking(catalog, ["m", "m"])
    first.cancel()
    broker.slow.set()
    assert await second is True
    with pytest.raises(asyncio.CancelledError):
        await first
    assert broker.listed == 1


async def test_an_unknown_model_is_listed_again_after_refresh_s() -> None:
    broker = Broker()
    catalog = ModelCatalog(broker, TOPICS, refresh_s=0)
    assert await catalog.served("m") is False
    broker.topics.append(TOPICS.requests("m"))  # a worker created its topic
    assert await catalog.served("m") is True
    assert broker.listed == 2
