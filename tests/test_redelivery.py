"""A worker that stops with uncommitted work loses nothing: the next one runs those jobs."""

import asyncio

from aiokafka import AIOKafkaConsumer

from inferq.connections import consumer_options
from inferq.demo_models import dataset
from producer import AsyncClient, ProducerSettings
from results_api.settings import ApiSettings
from tests.support import running_api, running_worker, wait_terminal
from worker import WorkerSettings

JOBS = 40


async def test_jobs_fetched_but_not_committed_are_run_by_the_next_worker(
    worker_settings: WorkerSettings,
    api_settings: ApiSettings,
    producer_settings: ProducerSettings,
) -> None:
    model = "breast_cancer"
    features, _ = dataset(model)
    # The first worker creates the topics, serves, and stops cleanly.
    async with running_worker(worker_settings.model_copy(update={"models": [model]})):
        pass
    async with AsyncClient(settings=producer_settings) as client:
        ids = [await client.submit(model, {"input": features[i : i + 1]}) for i in range(JOBS)]

    # A member of the worker group takes every job and dies before committing any.
    topics = worker_settings.topics
    crashed = AIOKafkaConsumer(
        topics.requests(model),
        **consumer_options(worker_settings, topics.worker_group(model)),
    )
    await crashed.start()
    taken = 0
    async with asyncio.timeout(30):
        while taken < JOBS:
            fetched = await crashed.getmany(timeout_ms=200)
            taken += sum(len(records) for records in fetched.values())
    await crashed.stop()
    assert taken == JOBS

    async with (
        running_worker(worker_settings.model_copy(update={"models": [model]})),
        running_api(api_settings) as api,
    ):
        jobs = [await wait_terminal(api, job_id) for job_id in ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * JOBS
