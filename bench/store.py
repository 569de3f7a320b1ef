"""The SQLite result store's cost per job, without Kafka: each job's `queued` event, then
its `succeeded` event `--lag` jobs later, written in batches the size of an ingest fetch,
as the API's ingestor writes them. Prints one JSON line per kind of job id, with this
process's CPU per job (both events):

- `ordered`: inferq's own ids (`schemas.new_job_id`: the time first, then randomness);
- `random`: 128 random bits, as a uuid4 or inferq's ids before the seventh session.

    python -m bench.store [--jobs 200000] [--batch 500] [--lag 20000]
"""

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results_api.sqlite_store import SQLiteStore
from schemas import (
    Datatype,
    InferenceRequest,
    JobEvent,
    JobStatus,
    Tensor,
    Timings,
    new_job_id,
    utcnow,
)
from schemas.codec import encode_queued

ID_KINDS: dict[str, Callable[[], str]] = {
    "ordered": new_job_id,
    "random": lambda: os.urandom(16).hex(),
}


def documents() -> tuple[bytes, bytes]:
    """A breast_cancer job's queued and succeeded events, as the ingestor stores them."""
    tensor = Tensor(name="input", datatype=Datatype.FP32, shape=[1, 30], data=[0.5] * 30)
    request = InferenceRequest(model="breast_cancer", inputs=[tensor])
    queued = encode_queued(request).value
    label = Tensor(name="label", datatype=Datatype.INT64, shape=[1], data=[1])
    probabilities = Tensor(
        name="probabilities", datatype=Datatype.FP32, shape=[1, 2], data=[0.25, 0.75]
    )
    done = JobEvent.queued(request).model_copy(
        update={
            "status": JobStatus.SUCCEEDED,
            "model_version": "1",
            "outputs": [label, probabilities],
            "timings": Timings(
                queued_ms=1705.085, batch_wait_ms=88.499, inference_ms=1.301, batch_size=256
            ),
            "worker": "inferq-worker-host-12345",
            "completed_at": utcnow(),
        }
    )
    return queued, done.model_dump_json(exclude_none=True).encode()


async def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    make_id = ID_KINDS[kind]
    queued, done = documents()
    with tempfile.TemporaryDirectory() as tmp:
        store = await SQLiteStore(str(Path(tmp) / "jobs.db"), retention_s=3600).open()
        waiting: deque[list[str]] = deque()
        cpu = 0.0
        try:
            for _ in range(args.jobs // args.batch):
                ids = [make_id() for _ in range(args.batch)]
                events = [(job_id, JobStatus.QUEUED, queued) for job_id in ids]
                waiting.append(ids)
                if len(waiting) * args.batch > args.lag:
                    events += [(job_id, JobStatus.SUCCEEDED, done) for job_id in waiting.popleft()]
                started = time.process_time()
                await store.apply_encoded(events)
                cpu += time.process_time() - started
            started = time.process_time()
            for ids in waiting:
                await store.apply_encoded([(job_id, JobStatus.SUCCEEDED, done) for job_id in ids])
            cpu += time.process_time() - started
        finally:
            await store.close()
    jobs = args.jobs // args.batch * args.batch
    return {
        "bench": "store",
        "store": "sqlite",
        "job_ids": kind,
        "jobs": jobs,
        "batch": args.batch,
        "lag": args.lag,
        "cpu_us_per_job": round(cpu / jobs * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500, help="events a fetch brings")
    parser.add_argument("--lag", type=int, default=20_000, help="jobs between the two events")
    args = parser.parse_args()
    if not 0 < args.batch <= args.jobs:
        parser.error("--batch must be at least 1 and at most --jobs")
    for kind in ID_KINDS:
        print(json.dumps(asyncio.run(measure(kind, args))), flush=True)


if __name__ == "__main__":
    main()
