"""The results API's own cost per HTTP request: reads of a finished job and submits, sent
by aiohttp from this process to the API of a local stack. Prints one JSON line per
endpoint, with the API process's CPU per request (`/proc/<pid>/stat` before and after).

    python -m bench.api [--requests 5000] [--concurrency 10]
"""

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.processes import Stack, process_cpu_s, start_stack
from inferq.collector import CollectorSettings, tune_collector
from producer import AsyncClient, ProducerSettings
from schemas import JobStatus

MODEL = "breast_cancer"
FEATURES = [0.5] * 30


async def finished_job(stack: Stack) -> str:
    """The id of a job that has run, sent through the SDK."""
    settings = ProducerSettings(
        bootstrap_servers=stack.bootstrap, topic_prefix=stack.prefix, api_url=stack.api_url
    )
    async with AsyncClient(settings=settings) as client:
        job_id = await client.submit(MODEL, {"input": np.array([FEATURES], np.float32)})
        await client.flush()
        job = await client.wait(job_id, timeout=120)
    if job.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"the first job did not succeed: {job.model_dump_json()}")
    return job_id


async def timed(
    stack: Stack, name: str, one: Callable[[], Awaitable[None]], args: argparse.Namespace
) -> dict[str, Any]:
    """`args.requests` calls of `one`, `args.concurrency` at a time, after a warm-up."""
    for _ in range(100):
        await one()
    api = stack.api
    if api is None:
        raise RuntimeError("the stack has no API process")
    cpu0, start = process_cpu_s(api.pid), time.monotonic()
    for _ in range(args.requests // args.concurrency):
        await asyncio.gather(*(one() for _ in range(args.concurrency)))
    elapsed = time.monotonic() - start
    sent = args.requests // args.concurrency * args.concurrency
    return {
        "bench": "api",
        "endpoint": name,
        "requests": sent,
        "concurrency": args.concurrency,
        "requests_per_s": round(sent / elapsed),
        "api_cpu_us_per_request": round((process_cpu_s(api.pid) - cpu0) * 1e6 / sent),
    }


async def measure(stack: Stack, args: argparse.Namespace) -> None:
    job_id = await finished_job(stack)
    body = {
        "model": MODEL,
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": FEATURES}],
    }
    async with aiohttp.ClientSession(stack.api_url) as http:

        async def read() -> None:
            async with http.get(f"/v1/jobs/{job_id}", params={"wait": "30"}) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"GET answered {answer.status}")

        async def submit() -> None:
            async with http.post("/v1/jobs", json=body) as answer:
                await answer.read()
                if answer.status != 202:
                    raise RuntimeError(f"POST answered {answer.status}")

        for name, one in (("GET /v1/jobs/{id}?wait=30", read), ("POST /v1/jobs", submit)):
            print(json.dumps(await timed(stack, name, one, args)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repo", type=Path, default=Path("models"))
    args = parser.parse_args()
    # the stack as bench.e2e starts it; idle fetches every 100 ms keep the broker quiet
    stack_args = argparse.Namespace(
        repo=args.repo, model=MODEL, max_batch_size=256, fetch_max_wait_ms=100, processes=1
    )
    tune_collector(CollectorSettings().gc_threshold)
    stack = start_stack(stack_args)
    try:
        asyncio.run(measure(stack, args))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
