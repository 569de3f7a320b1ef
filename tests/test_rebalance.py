"""A worker that loses partitions while its batcher is full leaves their records to
their new owner and goes on committing the partitions it keeps."""

import threading

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from inferq.admin import ensure_topics
from inferq.demo_models import dataset
from inferq.retry import Backoff
from producer import AsyncClient, ProducerSettings
from results_api.settings import ApiSettings
from schemas import KafkaRecord
from tests.support import eventually, running_api, running_worker, wait_terminal
from worker import WorkerSettings
from worker.execute import run_batch
from worker.jobs import Job

MODEL = "breast_cancer"
JOBS = 20
HELD = "held-worker"
GATE_S = 60.0  # the held batch runs after this at the latest, should the test fail first


class Gate:
    """Holds the batches of the worker named HELD until opened: its batcher fills up and
    its fetcher waits to put the next job."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.holding = threading.Event()

    def run_batch(
        self, jobs: list[Job], worker: str, rerun: Backoff, max_result_bytes: int
    ) -> list[KafkaRecord]:
        if worker == HELD:
            self.holding.set()
            self.opened.wait(GATE_S)
        return run_batch(jobs, worker, rerun, max_result_bytes)


async def committed_to_the_end(settings: WorkerSettings) -> bool | None:
    """Whether the group committed every request (offsets are each partition's next one;
    the development broker's `end_offsets` is wrong, so the total is compared)."""
    topic = settings.topics.requests(MODEL)
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.topics.worker_group(MODEL),
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.request_partitions)]
        committed = [await reader.committed(tp) or 0 for tp in partitions]
        return sum(committed) == JOBS or None
    finally:
        await reader.stop()


async def test_partitions_revoked_while_the_batcher_is_full_are_left_to_their_new_owner(
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    api_settings: ApiSettings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate()
    monkeypatch.setattr("worker.pipeline.run_batch", gate.run_batch)
    settings = worker_settings.model_copy(
        update={"models": [MODEL], "max_batch_size": 1, "max_buffered_jobs": 1}
    )
    topics = settings.topics
    await ensure_topics(settings, {topics.requests(MODEL): 2, topics.results: 2, topics.dlq: 2})
    features, _ = dataset(MODEL)
    async with AsyncClient(settings=producer_settings) as client:
        # both partitions are full before the held worker's first fetch
        ids = [await client.submit(MODEL, {"input": features[i : i + 1]}) for i in range(JOBS)]

    held = settings.model_copy(update={"worker_name": HELD})
    try:
        async with running_worker(held) as first:
            pipeline = first.pipelines[0]

            async def full() -> bool | None:
                return (gate.holding.is_set() and pipeline.batcher.buffered == 1) or None

            await eventually(full)
            async with running_worker(settings.model_copy(update={"worker_name": "joiner"})):

                async def shared() -> bool | None:
                    return len(pipeline.consumer.assignment()) == 1 or None

                await eventually(shared)
                gate.opened.set()
                await eventually(lambda: committed_to_the_end(settings), interval=0.2)
                async with running_api(api_settings) as api:
                    jobs = [await wait_terminal(api, job_id) for job_id in ids]
    finally:
        gate.opened.set()
    assert [job["status"] for job in jobs] == ["succeeded"] * JOBS
    assert [m for m in caplog.messages if "commit failed" in m] == []
