"""Run one batch of compatible jobs on their model, and write each job's result record.

A batch that ONNX Runtime fails is tried again (`inference_retries` times, with backoff),
then job by job, so one bad job cannot fail its neighbours.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from inferq.retry import Backoff
from schemas import ErrorCode, KafkaRecord, encode_event, utcnow
from schemas.errors import TransientError
from worker.jobs import Job, failed_event
from worker.results import BatchOutputs, succeeded_record, within_limit
from worker.runtime import Arrays
from worker.settings import DEFAULT_MAX_RESULT_BYTES

log = logging.getLogger(__name__)


def _merge(jobs: list[Job]) -> Arrays:
    if len(jobs) == 1:
        return jobs[0].arrays
    return {name: np.concatenate([j.arrays[name] for j in jobs]) for name in jobs[0].arrays}


@dataclass(frozen=True, slots=True)
class _Run:
    started: datetime  # wall clock, comparable with the submit time of another process
    began: float  # monotonic, comparable with the time a job entered the batcher
    inference_ms: float
    size: int

    def timings(self, job: Job) -> dict[str, float]:
        """A job's `Timings`, as the dict its result record holds."""
        queued_ms = (self.started - job.request.submitted_at).total_seconds() * 1000
        waited_ms = 0.0 if job.enqueued is None else (self.began - job.enqueued) * 1000
        return {
            "queued_ms": max(0.0, queued_ms),
            "batch_wait_ms": max(0.0, waited_ms),
            "inference_ms": self.inference_ms,
            "batch_size": self.size,
        }


ONCE = Backoff(first_s=0.0, max_s=0.0, retries=0)


def run_batch(
    jobs: list[Job],
    worker: str,
    rerun: Backoff = ONCE,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> list[KafkaRecord]:
    """Run one batch of compatible jobs; every job gets exactly one terminal result record.

    A batch that ONNX Runtime fails (a transient error) is tried again after each pause
    of `rerun`; a batch that still fails, or fails otherwise, is run job by job, once each.
    A job whose result record would be over `max_result_bytes` fails with
    `payload_too_large` instead.
    """
    pauses = rerun.pauses()
    while True:
        started = utcnow()
        began = time.monotonic()
        try:
            outputs = BatchOutputs(jobs[0].model.run(_merge(jobs)), [j.rows for j in jobs])
            break
        except TransientError as exc:
            if (pause := next(pauses, None)) is None:
                return _alone(jobs, worker, exc, max_result_bytes)
            log.warning("batch of %d failed (%s); again in %.2fs", len(jobs), exc, pause)
            time.sleep(pause)  # this model's inference thread: nothing else waits on it
        except Exception as exc:
            return _alone(jobs, worker, exc, max_result_bytes)
    run = _Run(started, began, (time.monotonic() - began) * 1000, len(jobs))
    completed = utcnow()
    return [
        within_limit(
            job,
            succeeded_record(
                job, outputs.tensors(i, job.binary), run.timings(job), worker, completed
            ),
            max_result_bytes,
            worker,
        )
        for i, job in enumerate(jobs)
    ]


def _alone(
    jobs: list[Job], worker: str, exc: Exception, max_result_bytes: int
) -> list[KafkaRecord]:
    """Each job of a failed batch run on its own; a job that failed alone ends `failed`."""
    if len(jobs) > 1:
        log.warning("batch of %d failed (%s); running its jobs one by one", len(jobs), exc)
        return [
            record for job in jobs for record in run_batch([job], worker, ONCE, max_result_bytes)
        ]
    job = jobs[0]
    log.warning("job %s failed: %s", job.request.job_id, exc)
    event = failed_event(
        job.request.job_id,
        ErrorCode.INFERENCE_ERROR,
        f"model {job.model.name} failed: {exc}",
        worker=worker,
        request=job.request,
        model_version=job.model.version,
    )
    return [encode_event(event)]
