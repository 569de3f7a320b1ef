"""End to end: broker, worker process(es) and the results API on this machine; jobs sent
through the SDK; results read back by job id. Prints one JSON line per run.

    python -m bench.e2e --model breast_cancer --jobs 100000              # burst
    python -m bench.e2e --model breast_cancer --jobs 3000 --rate 100     # fixed rate
    python -m bench.e2e --model breast_cancer --jobs 1000000 --waves 10  # memory over 1M jobs
    python -m bench.e2e --model breast_cancer --jobs 100000 --profile /tmp/p  # where CPU goes

Latency is from `submit` to the result: in burst mode, to its arrival on the results
topic (a lower bound of "readable"; throughput counts until the API has ingested every
result); at a fixed rate, to the answer of a long-poll `GET /v1/jobs/{id}?wait=30` sent
right after submit, i.e. readable through the API. Each job's own timings split it: its
`queued_ms` (submit to the worker starting its batch, of which `batch_wait_ms` in the
batcher), `inference_ms`, and at a fixed rate `return_ms` (the worker's `completed_at` to
the answer: the result's broker hop, the API's ingestion and the long-poll's answer;
clocks of processes on one machine).
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic_core import from_json

from bench import profiling
from bench.payloads import make_inputs
from bench.processes import Stack, model_path, start_stack
from bench.raw import measure
from inferq.collector import CollectorSettings, tune_collector
from inferq.gaps import GapGuard
from producer import AsyncClient, ProducerSettings
from schemas import SCHEMA_VERSION, JobStatus

TERMINAL = {"succeeded", "failed", "expired", "cancelled"}
TIMINGS = ("queued_ms", "batch_wait_ms", "inference_ms", "batch_size")

# A job's end as the summary needs it: its status, and its timings where it ran. Tuples
# of strings and numbers only: the garbage collector stops walking them, while 100,000
# whole events kept alive made it take a third of the load generator's CPU.
Outcome = tuple[str, tuple[float, ...] | None]


def queued(record: Any) -> bool:
    """Whether a record is a `queued` event as inferq writes it: its status right after
    its job id (`schemas.encode_queued`'s layout; any other layout is parsed)."""
    head = b'{"schema_version":%d,"job_id":"%s","status":"queued"' % (SCHEMA_VERSION, record.key)
    return bool(record.value.startswith(head))


def outcome(event: dict[str, Any]) -> Outcome:
    timings = event.get("timings")
    return event["status"], tuple(timings[k] for k in TIMINGS) if timings else None


class Watcher:
    """Reads the results topic and notes when each job's terminal event arrived."""

    def __init__(self, bootstrap: str, topic: str, fetch_max_wait_ms: int) -> None:
        self.arrived: dict[str, float] = {}
        self.outcomes: dict[str, Outcome] = {}
        self._topic = topic
        # No group: a busy bench loop must not miss heartbeats and lose its partitions.
        # It fetches as often as the stack does: each idle fetch costs the shared cores.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=fetch_max_wait_ms,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self._wanted = 0
        self.complete = asyncio.Event()
        self._milestones: list[tuple[int, asyncio.Event]] = []
        self.gaps = GapGuard()

    async def run(self) -> None:
        await self._consumer.start()
        try:
            partitions = self._consumer.partitions_for_topic(self._topic) or set()
            assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            self._consumer.assign(assigned)
            await self._consumer.seek_to_beginning(*assigned)
            while True:
                batch = await self._consumer.getmany(timeout_ms=100, max_records=10_000)
                now = time.monotonic()
                for partition, records in batch.items():
                    for record in self.gaps.follow_on(self._consumer, partition, records):
                        self._note(record, now)
        finally:
            await self._consumer.stop()

    def _note(self, record: Any, now: float) -> None:
        if queued(record):
            return  # half the records: skipped unparsed, as the bench shares the cores
        event = from_json(record.value)  # cheaper than models, for the same reason
        job_id = event["job_id"]
        if event["status"] in TERMINAL and job_id not in self.arrived:
            self.arrived[job_id] = now
            self.outcomes[job_id] = outcome(event)
            if self._wanted and len(self.arrived) >= self._wanted:
                self.complete.set()
            for count, reached in self._milestones:
                if len(self.arrived) >= count:
                    reached.set()

    async def wait(self, seconds: float) -> None:
        """Until every expected job arrived; fails with the count if not in time."""
        try:
            await asyncio.wait_for(self.complete.wait(), seconds)
        except TimeoutError:
            raise TimeoutError(f"{len(self.arrived)} of {self._wanted} results seen") from None

    async def until(self, count: int) -> None:
        """Until `count` results have arrived in all."""
        reached = asyncio.Event()
        self._milestones.append((count, reached))
        if len(self.arrived) >= count:
            reached.set()
        await reached.wait()

    def expect(self, count: int) -> None:
        self._wanted = count
        if len(self.arrived) >= count:
            self.complete.set()


async def metric(http: httpx.AsyncClient, name: str) -> float:
    text = (await http.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith(f"{name} "))
    return float(line.split()[1])


async def ingested(http: httpx.AsyncClient) -> float:
    return await metric(http, "inferq_ingested_events_total")


def cpu_per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, int]:
    """Microseconds of CPU per job that each part of the stack used between two readings of
    `Stack.cpu_seconds`, and their total."""
    used = {part: round((after[part] - before[part]) * 1e6 / jobs) for part in after}
    return {**used, "total": sum(used.values())}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def warm_up(client: AsyncClient, model: str, rows: int) -> None:
    """Until a job comes back: the worker has its partitions and its sessions are warm.
    (`wait` asks again through 404s: a job sent without a `queued` event reads 404 until
    a worker has run it.)"""
    job_id = await client.submit(model, make_inputs(model, 1, rows))
    await client.flush()
    job = await client.wait(job_id, timeout=120)
    if job.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"warm-up job failed: {job.model_dump_json()}")


async def sample_memory(
    watcher: Watcher, before: int, jobs: int, stack: Stack, memory: dict[str, list[int]]
) -> None:
    """Worker RSS when 10%, 50% and 100% of the burst's results have arrived."""
    for share in (0.1, 0.5, 1.0):
        await watcher.until(before + round(share * jobs))
        memory[f"{round(share * jobs)}"] = stack.worker_rss_mb()


async def with_watcher(
    args: argparse.Namespace,
    client: AsyncClient,
    http: httpx.AsyncClient,
    stack: Stack,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """`args.waves` bursts of `args.jobs / args.waves` jobs, one after the other on the same
    stack, timed by a watcher that reads the results topic from before the warm-up."""
    watcher = Watcher(stack.bootstrap, client.settings.topics.results, args.fetch_max_wait_ms)
    watching = asyncio.create_task(watcher.run())
    watching.add_done_callback(lambda task: task.cancelled() or task.result())
    wave = argparse.Namespace(**{**vars(args), "jobs": args.jobs // args.waves})
    try:
        await warm_up(client, args.model, args.rows)
        for number in range(1, args.waves + 1):
            result = await burst(wave, client, http, watcher, stack)
            watcher.outcomes.clear()  # a wave is summarized: keep the bench's memory flat
            served = {"wave": number, "jobs_served": number * wave.jobs} if args.waves > 1 else {}
            emit({**served, **result})
    finally:
        watching.cancel()


async def burst(
    args: argparse.Namespace,
    client: AsyncClient,
    http: httpx.AsyncClient,
    watcher: Watcher,
    stack: Stack,
) -> dict[str, Any]:
    inputs = [make_inputs(args.model, i, args.rows) for i in range(min(args.jobs, 1000))]
    base = await ingested(http)
    seen_before = len(watcher.arrived)
    memory: dict[str, list[int]] = {}
    submitted: dict[str, float] = {}
    cpu0 = time.process_time()
    used0 = stack.cpu_seconds()
    spies = start_profiles(args, stack)
    start = time.monotonic()
    for i in range(args.jobs):
        job_id = await client.submit(args.model, inputs[i % len(inputs)])
        submitted[job_id] = time.monotonic()
    await client.flush()
    sent = time.monotonic()
    client_cpu = time.process_time() - cpu0
    watcher.expect(seen_before + args.jobs)
    sampling = asyncio.create_task(sample_memory(watcher, seen_before, args.jobs, stack, memory))
    await watcher.wait(args.timeout)
    await sampling
    deadline = time.monotonic() + args.timeout
    events = 2 if args.queued_events else 1  # a terminal event, and a queued one if sent
    while True:
        if await ingested(http) >= base + events * args.jobs:
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the API did not ingest every result in time")
        await asyncio.sleep(0.05)
    readable = time.monotonic()
    used = cpu_per_job(used0, stack.cpu_seconds(), args.jobs)
    emit_profiles(spies)
    latencies = [(watcher.arrived[j] - t) * 1000 for j, t in submitted.items()]
    return {
        "jobs_per_s": round(args.jobs / (readable - start), 1),
        "submit_per_s": round(args.jobs / (sent - start), 1),
        "client_cpu_share": round(client_cpu / (readable - start), 2),
        "cpu_us_per_job": used,
        "latency_to": "results topic",
        "worker_rss_mb_after_jobs": memory,
        "watcher_refetches": watcher.gaps.refetches,
        "api_refetches": await metric(http, "inferq_ingest_refetches_total"),
        **summary(latencies, [watcher.outcomes[j] for j in submitted]),
    }


async def fixed_rate(args: argparse.Namespace, client: AsyncClient, stack: Stack) -> dict[str, Any]:
    """Jobs at `args.rate` per second, each followed by a long-poll for its result. The polls
    go through aiohttp: httpx costs the load generator about 3 ms of CPU per request, which
    these shared cores would take from the stack under test."""
    inputs = [make_inputs(args.model, i, args.rows) for i in range(min(args.jobs, 1000))]
    latencies: list[float] = []
    returns: list[float] = []  # from the worker's `completed_at` to the answer
    finished: list[Outcome] = []
    unfinished: Counter[str] = Counter()  # answers that were not a finished job
    polls: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(stack.api_url, connector=connector) as http:

        async def poll(job_id: str, at: float) -> None:
            async with http.get(f"/v1/jobs/{job_id}", params={"wait": "30"}) as answer:
                job = await answer.json()
            if job.get("status") in TERMINAL:
                latencies.append((time.monotonic() - at) * 1000)
                if (completed := job.get("completed_at")) is not None:
                    ended = datetime.fromisoformat(completed).timestamp()
                    returns.append((time.time() - ended) * 1000)
                finished.append(outcome(job))
            else:
                code = job.get("error", {}).get("code") if answer.status >= 400 else None
                unfinished[f"{answer.status} {code or job.get('status')}"] += 1

        used0 = stack.cpu_seconds()
        spies = start_profiles(args, stack)
        start = time.monotonic()
        for i in range(args.jobs):
            await asyncio.sleep(max(0.0, start + i / args.rate - time.monotonic()))
            at = time.monotonic()
            job_id = await client.submit(args.model, inputs[i % len(inputs)])
            task = asyncio.create_task(poll(job_id, at))
            polls.add(task)
            task.add_done_callback(polls.discard)
        await client.flush()
        await asyncio.gather(*list(polls))
    elapsed = time.monotonic() - start
    used = cpu_per_job(used0, stack.cpu_seconds(), args.jobs)
    emit_profiles(spies)
    return {
        "jobs_per_s": round(args.jobs / elapsed, 1),
        "rate": args.rate,
        "cpu_us_per_job": used,
        "completed": len(latencies),
        "unfinished": dict(unfinished),
        "latency_to": "API long-poll",
        **summary(latencies, finished),
        "return_ms_p50": round(percentile(returns, 0.5), 2) if returns else None,
    }


def start_profiles(args: argparse.Namespace, stack: Stack) -> list[profiling.Spy]:
    """With `--profile`: py-spy on the worker (its processes included), the API and this
    load generator."""
    if args.profile is None:
        return []
    return profiling.start(args.profile, stack.python_pids(), with_children={"workers"})


def emit_profiles(spies: list[profiling.Spy]) -> None:
    for summary_line in profiling.stop(spies):
        print(json.dumps(summary_line), flush=True)


def summary(latencies: list[float], outcomes: list[Outcome]) -> dict[str, Any]:
    timings = [t for _, t in outcomes if t is not None]
    failed = sum(status != "succeeded" for status, _ in outcomes)

    def column(key: str) -> list[float]:
        return [t[TIMINGS.index(key)] for t in timings]

    def median(key: str) -> float:
        return round(float(statistics.median(column(key))), 3)

    return {
        "failed": failed,
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "queued_ms_p50": median("queued_ms"),
        "batch_wait_ms_p50": median("batch_wait_ms"),
        "inference_ms_p50": median("inference_ms"),
        "batch_size_mean": round(statistics.fmean(column("batch_size")), 1),
    }


async def run(args: argparse.Namespace) -> None:
    """Print a JSON line per result as it comes. The raw limit is measured first, while
    the cores are idle."""
    raw = measure(model_path(args), args.model, 1.0, (args.raw_batch,))
    stack: Stack = start_stack(args)

    def emit(result: dict[str, Any]) -> None:
        print(json.dumps(line(args, result, raw, stack.worker_rss_mb())), flush=True)

    try:
        settings = ProducerSettings(
            bootstrap_servers=stack.bootstrap,
            topic_prefix=stack.prefix,
            binary_tensors=args.encoding == "binary",
            queued_events=args.queued_events,
            api_url=stack.api_url,
        )
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with (
            AsyncClient(settings=settings) as client,
            httpx.AsyncClient(base_url=stack.api_url, limits=limits) as http,
        ):
            if args.rate:
                await warm_up(client, args.model, args.rows)
                emit(await fixed_rate(args, client, stack))
            else:
                await with_watcher(args, client, http, stack, emit)
    finally:
        stack.stop()


def line(
    args: argparse.Namespace, result: dict[str, Any], raw: dict[str, Any], worker_rss: list[int]
) -> dict[str, Any]:
    """One JSON line: the run's settings, one result, the raw limit and the ratio to it, and
    the worker's resident memory now."""
    jobs = args.jobs // args.waves
    return {
        "bench": "e2e",
        "model": args.model,
        "mode": "rate" if args.rate else "burst",
        "jobs": jobs,
        "rows_per_job": args.rows,
        "encoding": args.encoding,
        "queued_events": args.queued_events,
        "worker_processes": args.processes,
        "max_batch_size": args.max_batch_size,
        "fetch_max_wait_ms": args.fetch_max_wait_ms,
        **result,
        "raw_samples_per_s": raw["samples_per_s"],
        "raw_layout": raw["layout"],
        "ratio_to_raw": round(result["jobs_per_s"] * args.rows / raw["samples_per_s"], 4),
        "worker_rss_mb": worker_rss,
        "cores": os.cpu_count(),
        "bench_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="breast_cancer")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1, help="rows per job")
    parser.add_argument("--rate", type=float, default=0, help="jobs/s; 0 sends a burst")
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--max-batch-size", type=int, default=256)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=20)
    parser.add_argument("--encoding", choices=["binary", "json"], default="binary")
    parser.add_argument("--repo", type=Path, default=Path("models"))
    parser.add_argument("--raw-batch", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--waves",
        type=int,
        default=1,
        help="bursts: send the jobs in this many bursts, each after the last one's results "
        "(a line per burst: worker memory as the jobs served grow)",
    )
    parser.add_argument(
        "--no-queued-events",
        dest="queued_events",
        action="store_false",
        help="bursts: submit without the `queued` events (INFERQ_QUEUED_EVENTS=false)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the worker, the API and this load generator with py-spy over the "
        "measured run: a file per process in this directory, a JSON summary line each",
    )
    args = parser.parse_args()
    if args.profile and args.waves > 1:
        parser.error("--profile samples one run: leave out --waves")
    if args.rate and not args.queued_events:
        parser.error("--no-queued-events is for bursts: a long-poll sent at submit needs them")
    if args.waves < 1 or args.jobs % args.waves:
        parser.error(f"--jobs {args.jobs} does not split into {args.waves} equal waves")
    # The load generator is an application that submits at a high rate: it sets its garbage
    # collector as the services do (INFERQ_GC_THRESHOLD, which the stack's processes read).
    tune_collector(CollectorSettings().gc_threshold)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
