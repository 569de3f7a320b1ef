"""Helpers for tests against the real broker: run parts in-process, wait with deadlines."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from aiokafka import AIOKafkaConsumer, TopicPartition

from inferq.devbroker import free_port
from results_api.server import serve
from results_api.settings import ApiSettings
from schemas import Tensor
from worker import Worker, WorkerSettings

T = TypeVar("T")

# Short group timeouts: each group join on the development broker waits about half of it.
GROUP_TIMEOUTS: dict[str, Any] = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}
START_TIMEOUT_S = 30.0
TERMINAL = {"succeeded", "failed", "expired", "cancelled"}


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within_s: float = 30.0, interval: float = 0.02
) -> T:
    """Poll `probe` until it returns a value other than None; fail after `within_s` seconds."""
    async with asyncio.timeout(within_s):
        while True:
            value = await probe()
            if value is not None:
                return value
            await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_worker(settings: WorkerSettings) -> AsyncIterator[Worker]:
    worker = Worker(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            done, _ = await asyncio.wait(
                [task, asyncio.create_task(worker.ready.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        if task in done:
            task.result()
        yield worker
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def running_api(settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings.model_copy(update={"port": free_port()})
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, ready))
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            done, _ = await asyncio.wait(
                [task, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED
            )
        if task in done:
            task.result()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}") as http:
            await eventually(lambda: _ready(http))
            yield http
    finally:
        stop.set()
        await task


async def _ready(http: httpx.AsyncClient) -> bool | None:
    return True if (await http.get("/readyz")).status_code == 200 else None


async def wait_terminal(
    http: httpx.AsyncClient, job_id: str, within_s: float = 30.0
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await http.get(f"/v1/jobs/{job_id}")
        if response.status_code != 200:
            return None
        job: dict[str, Any] = response.json()
        return job if job["status"] in TERMINAL else None

    return await eventually(probe, within_s=within_s)


def body(model: str, rows: npt.NDArray[Any], **extra: Any) -> dict[str, Any]:
    """A `POST /v1/jobs` body for a model with one input named `input`."""
    return {"model": model, "inputs": [Tensor.from_numpy("input", rows).model_dump()], **extra}


def run_onnx(repo: Path, model: str, features: npt.NDArray[np.float32]) -> list[Any]:
    """Outputs of the model file run directly by ONNX Runtime."""
    session = ort.InferenceSession(str(repo / model / "1" / "model.onnx"))
    outputs: list[Any] = session.run(None, {"input": features})
    return outputs


def output(job: dict[str, Any], name: str) -> npt.NDArray[Any]:
    """An output of a job as the API returned it, in either tensor form."""
    tensor = next(t for t in job["outputs"] if t["name"] == name)
    return Tensor.model_validate(tensor).to_numpy()


async def read_all(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    """(partition, key) of every record of `topic`, read to each partition's end once at
    least `count` are there: a record more than expected is seen, not left behind."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # metadata of every topic: a bare start asks for none
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen: list[tuple[int, bytes]] = []

        async def at_end(part: TopicPartition) -> bool:
            end = consumer.highwater(part)
            return end is not None and await consumer.position(part) >= end

        async def everything() -> list[tuple[int, bytes]] | None:
            batch = await consumer.getmany(timeout_ms=100)
            seen.extend((r.partition, r.key or b"") for rs in batch.values() for r in rs)
            if len(seen) < count or not all([await at_end(part) for part in partitions]):
                return None
            return seen

        return await eventually(everything)
    finally:
        await consumer.stop()


async def dead_letters(settings: WorkerSettings, count: int) -> list[Any]:
    """The records of the dead-letter topic, once there are at least `count`."""
    letters = AIOKafkaConsumer(
        settings.topics.dlq,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await letters.start()
    try:
        got: list[Any] = []
        async with asyncio.timeout(30):
            while len(got) < count:
                got += [r for rs in (await letters.getmany(timeout_ms=100)).values() for r in rs]
        return got
    finally:
        await letters.stop()
