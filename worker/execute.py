"""Run one batch of compatible jobs on their model, and split the outputs per job.

A batch that fails is retried job by job, so one bad job cannot fail its neighbours.
"""

import logging
import time
from datetime import datetime

import numpy as np

from schemas import ErrorCode, JobEvent, JobStatus, Tensor, Timings, utcnow
from worker.jobs import Job, failed_event
from worker.runtime import Arrays

log = logging.getLogger(__name__)


def _merge(jobs: list[Job]) -> Arrays:
    if len(jobs) == 1:
        return jobs[0].arrays
    return {name: np.concatenate([j.arrays[name] for j in jobs]) for name in jobs[0].arrays}


def _split(outputs: Arrays, jobs: list[Job]) -> list[Arrays]:
    if len(jobs) == 1:
        return [outputs]
    total = sum(j.rows for j in jobs)
    for name, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != total:
            raise ValueError(f"output '{name}' has no batch dimension: shape {list(value.shape)}")
    bounds = np.cumsum([j.rows for j in jobs])[:-1]
    pieces = {name: np.split(value, bounds) for name, value in outputs.items()}
    return [{name: pieces[name][i] for name in outputs} for i in range(len(jobs))]


def _succeeded(
    job: Job, outputs: Arrays, started: datetime, ms: float, size: int, worker: str
) -> JobEvent:
    request = job.request
    queued_ms = max(0.0, (started - request.submitted_at).total_seconds() * 1000)
    return JobEvent(
        job_id=request.job_id,
        status=JobStatus.SUCCEEDED,
        model=job.model.name,
        model_version=job.model.version,
        outputs=[
            Tensor.from_numpy(name, value, binary=job.binary) for name, value in outputs.items()
        ],
        timings=Timings(queued_ms=queued_ms, inference_ms=ms, batch_size=size),
        worker=worker,
        submitted_at=request.submitted_at,
        completed_at=utcnow(),
        metadata=request.metadata,
    )


def run_batch(jobs: list[Job], worker: str) -> list[JobEvent]:
    """Run one batch of compatible jobs; every job gets exactly one terminal event."""
    started = utcnow()
    t0 = time.perf_counter()
    try:
        per_job = _split(jobs[0].model.run(_merge(jobs)), jobs)
        ms = (time.perf_counter() - t0) * 1000
        return [
            _succeeded(job, out, started, ms, len(jobs), worker)
            for job, out in zip(jobs, per_job, strict=True)
        ]
    except Exception as exc:
        if len(jobs) > 1:
            log.warning("batch of %d failed (%s); retrying job by job", len(jobs), exc)
            return [event for job in jobs for event in run_batch([job], worker)]
        log.warning("job %s failed: %s", jobs[0].request.job_id, exc)
        job = jobs[0]
        message = f"model {job.model.name} failed: {exc}"
        event = failed_event(
            job.request.job_id,
            ErrorCode.INFERENCE_ERROR,
            message,
            worker=worker,
            request=job.request,
            model_version=job.model.version,
        )
        return [event]
