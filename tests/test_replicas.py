"""Two API replicas sharing one Redis store: one view, each webhook delivered once."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from results_api.settings import ApiSettings
from tests.receiver import running_receiver
from tests.support import eventually, running_api, running_worker
from tests.test_lifecycle import body, model_topic
from tests.test_webhooks import SECRET, settled, submit
from worker import Worker, WorkerSettings

REDIS_URL = "redis://127.0.0.1:6379/0"
JOBS = 20


@pytest.fixture
async def shared(api_settings: ApiSettings, prefix: str) -> AsyncIterator[ApiSettings]:
    yield api_settings.model_copy(
        update={
            "store": REDIS_URL,
            "webhook_secret": SECRET,
            "webhook_allow_private": "127.0.0.0/8",
            "webhook_poll_ms": 50,
        }
    )
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def test_each_result_is_delivered_once_and_readable_from_both(
    shared: ApiSettings, worker: Worker
) -> None:
    async with (
        running_receiver() as receiver,
        running_api(shared) as one,
        running_api(shared) as two,
    ):
        ids = [await submit((one, two)[i % 2], receiver.url) for i in range(JOBS)]
        for http in (one, two):
            for job_id in ids:
                job = await settled(http, job_id)
                assert job["status"] == "succeeded"
                assert [h["state"] for h in job["webhooks"]] == ["delivered"]
        sent = sorted(attempt.headers["webhook-id"] for attempt in await receiver.tried(JOBS))
    assert sent == sorted(f"msg_{job_id}.completed" for job_id in ids)
    assert len(receiver.attempts) == JOBS


async def test_a_long_poll_on_one_replica_wakes_for_a_result_the_other_ingests(
    shared: ApiSettings, worker_settings: WorkerSettings
) -> None:
    """The jobs end only after the polls wait; with the ingest group split over the two
    replicas, half of the results reach `two` only through the store's change feed."""
    await model_topic(shared)
    async with running_api(shared) as one, running_api(shared) as two:
        ids = [(await one.post("/v1/jobs", json=body())).json()["job_id"] for _ in range(8)]
        polls = [
            asyncio.create_task(two.get(f"/v1/jobs/{job_id}", params={"wait": 30}, timeout=40))
            for job_id in ids
        ]
        await eventually(lambda: _waiting(two, len(ids)))
        async with running_worker(worker_settings):
            answers = await asyncio.gather(*polls)
    assert [a.json()["status"] for a in answers] == ["succeeded"] * len(ids)


async def _waiting(http: httpx.AsyncClient, count: int) -> bool | None:
    metrics = (await http.get("/metrics")).text
    return True if f"inferq_waiting_jobs {count}\n" in metrics else None
