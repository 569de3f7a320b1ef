"""The worker's /healthz, /readyz and /metrics (served by `worker.endpoint`)."""

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from inferq.fetching import positions
from inferq.prometheus import CONTENT_TYPE, Sample, render
from schemas import ErrorCode
from worker.endpoint import Answer, Route
from worker.pipeline import ModelPipeline

if TYPE_CHECKING:
    from worker.main import Worker

JSON = "application/json"


def routes(worker: "Worker", stop: asyncio.Event) -> dict[str, Route]:
    async def healthz() -> Answer:
        return 200, JSON, b'{"status":"ok"}'

    async def readyz() -> Answer:
        problem = unready(worker, stop)
        if problem is None:
            return 200, JSON, b'{"status":"ready"}'
        error = {"error": {"code": ErrorCode.UNAVAILABLE.value, "message": problem}}
        return 503, JSON, json.dumps(error).encode()

    async def metrics() -> Answer:
        return 200, CONTENT_TYPE, render(await samples(worker, stop)).encode()

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


def unready(worker: "Worker", stop: asyncio.Event) -> str | None:
    """Why the worker cannot take jobs now, or None when it can."""
    if stop.is_set():
        return "stopping: finishing the jobs it fetched"
    if worker.broker is None:
        return "loading the models and creating the topics"
    if worker.broker.problem is not None:
        return worker.broker.problem
    if not worker.serving.is_set():
        return "reading the cancellations before taking jobs"
    return None


async def _lag(pipeline: ModelPipeline) -> int:
    """Records on the pipeline's partitions that it has not fetched yet."""
    consumer = pipeline.consumer
    held = await positions(consumer, consumer.assignment(), 0)
    assigned = consumer.assignment()  # a partition revoked meanwhile has no log end to ask
    return sum(
        max(0, (consumer.highwater(tp) or at) - at) for tp, at in held.items() if tp in assigned
    )


_PER_MODEL: list[tuple[str, str, str, Callable[[ModelPipeline], float]]] = [
    ("inferq_worker_batches_total", "counter", "batches run", lambda p: p.stats.batches),
    (
        "inferq_worker_batch_jobs_total",
        "counter",
        "jobs in the batches run",
        lambda p: p.stats.batch_jobs,
    ),
    (
        "inferq_worker_batch_seconds_total",
        "counter",
        "time spent running batches and writing their results",
        lambda p: p.stats.batch_seconds,
    ),
    (
        "inferq_worker_rejected_total",
        "counter",
        "records that could not run (a failed result, or a dead letter)",
        lambda p: p.stats.rejected,
    ),
    (
        "inferq_worker_cancelled_total",
        "counter",
        "jobs not run: cancelled",
        lambda p: p.stats.cancelled,
    ),
    (
        "inferq_worker_expired_total",
        "counter",
        "jobs not run: past their deadline",
        lambda p: p.stats.expired,
    ),
    (
        "inferq_worker_commit_failures_total",
        "counter",
        "offset commits that failed",
        lambda p: p.stats.commit_failures,
    ),
    (
        "inferq_worker_buffered_jobs",
        "gauge",
        "jobs waiting in the batcher",
        lambda p: p.batcher.buffered,
    ),
    (
        "inferq_worker_in_flight_records",
        "gauge",
        "records fetched whose outcome the broker has not acknowledged yet",
        lambda p: p.tracker.in_flight,
    ),
    (
        "inferq_worker_assigned_partitions",
        "gauge",
        "request partitions this process holds",
        lambda p: len(p.consumer.assignment()),
    ),
]


async def samples(worker: "Worker", stop: asyncio.Event) -> list[Sample]:
    pipelines = worker.pipelines
    found: list[Sample] = [
        (
            "inferq_worker_ready",
            "gauge",
            "1 when /readyz answers 200",
            float(unready(worker, stop) is None),
        ),
    ]
    for name, kind, help_text, read in _PER_MODEL:
        found.append((name, kind, help_text, [({"model": p.model}, read(p)) for p in pipelines]))
    lags = [({"model": p.model}, float(await _lag(p))) for p in pipelines]
    found.append(
        (
            "inferq_worker_lag_records",
            "gauge",
            "records on its partitions not fetched yet (log end minus position)",
            lags,
        )
    )
    return found
