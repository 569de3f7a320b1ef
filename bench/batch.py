"""The worker's own CPU per job, without Kafka: turning each request record into a job
(`worker.jobs.prepare`: decode, validate, numpy arrays), then running batches of them
(`worker.execute.run_batch`: merge the inputs, run the model, cut the outputs per job,
write each job's result record), with the worker's garbage collector settings. Prints
one JSON line per encoding of the tensors, with the model's own share (the batch's
`inference_ms`).

    python -m bench.batch [--model breast_cancer] [--repo models] [--batch 256] [--batches 200]
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from inferq.collector import CollectorSettings, tune_collector
from schemas import InferenceRequest, Tensor, decode_event, encode_request
from worker.execute import run_batch
from worker.jobs import Job, prepare
from worker.repository import ModelRepository

CPU = ["CPUExecutionProvider"]


def records(model: str, batch: int, binary: bool) -> list[tuple[bytes, bytes, Any]]:
    """`batch` request records of one row each, as the SDK writes them."""
    rows = np.random.default_rng(0).standard_normal((batch, 30)).astype(np.float32)
    encoded = [
        encode_request(
            InferenceRequest(
                model=model, inputs=[Tensor.from_numpy("input", row[None, :], binary=binary)]
            )
        )
        for row in rows
    ]
    return [(r.key, r.value, r.headers) for r in encoded]


def measure(repository: ModelRepository, args: argparse.Namespace, binary: bool) -> dict[str, Any]:
    batch = records(args.model, args.batch, binary)
    prepare_s = run_s = inference_ms = 0.0
    for round_ in range(args.batches + 10):  # the first ten warm up
        started = time.process_time()
        jobs = [prepare(k, v, h, repository, worker="bench") for k, v, h in batch]
        prepared = time.process_time()
        runnable = [job for job in jobs if isinstance(job, Job)]
        if len(runnable) != len(jobs):
            raise RuntimeError(f"{len(jobs) - len(runnable)} records were rejected")
        results = run_batch(runnable, "bench")
        ended = time.process_time()
        if round_ >= 10:
            prepare_s += prepared - started
            run_s += ended - prepared
            first = decode_event(results[0].value)
            if first.timings is None:
                raise RuntimeError(f"the batch did not succeed: {first.model_dump_json()}")
            inference_ms += first.timings.inference_ms
    jobs_run = args.batches * args.batch
    return {
        "bench": "batch",
        "model": args.model,
        "encoding": "binary" if binary else "json",
        "batch": args.batch,
        "jobs": jobs_run,
        "prepare_us_per_job": round(prepare_s / jobs_run * 1e6, 2),
        "run_batch_us_per_job": round(run_s / jobs_run * 1e6, 2),
        "inference_us_per_job": round(inference_ms / jobs_run * 1e3, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="breast_cancer", help="a model of 30 float inputs")
    parser.add_argument("--repo", type=Path, default=Path("models"))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    tune_collector(CollectorSettings().gc_threshold)  # as the worker does
    repository = ModelRepository(args.repo, [args.model], intra_op_threads=1, providers=CPU)
    for binary in (True, False):
        print(json.dumps(measure(repository, args, binary)), flush=True)


if __name__ == "__main__":
    main()
