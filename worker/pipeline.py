"""One model's pipeline: fetch -> prepare -> batcher -> ONNX Runtime -> publish -> commit.

Fetching and preparing the next jobs, and publishing the last batch's results, overlap
with inference, which runs in a thread (ONNX Runtime releases the GIL). An offset is
committed only once the results of every record up to it are acknowledged.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from inferq.connections import MAX_REQUEST_BYTES
from inferq.fetching import UnreadableRecord
from inferq.gaps import Reader
from inferq.outbox import Outbox
from inferq.retry import Backoff
from schemas import ErrorCode, JobEvent, JobStatus, utcnow
from schemas.codec import KafkaRecord
from schemas.topics import Topics
from worker.batcher import Batcher
from worker.cancels import Cancellations
from worker.deadletters import dead_letter
from worker.delivery import ROOM_WAIT_S, Delivery, Outgoing, encoded
from worker.execute import run_batch
from worker.jobs import (
    Job,
    Rejected,
    expired_event,
    failed_event,
    job_id_from_key,
    prepare,
    tenant_from,
)
from worker.offsets import OffsetTracker
from worker.repository import ModelRepository
from worker.settings import WorkerSettings
from worker.stats import PipelineStats

log = logging.getLogger(__name__)


class _Rebalance:
    """Commit what is finished before partitions move; forget what left."""

    def __init__(self, pipeline: "ModelPipeline") -> None:
        self._pipeline = pipeline

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._pipeline.reader.revoked(revoked)  # first: the fetch loop stops taking records
        await self._pipeline.commit()
        self._pipeline.tracker.forget(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned and not self._pipeline.assigned.is_set():
            self._pipeline.assigned.set()
            self._pipeline.on_assigned()


ConsumerRebalanceListener.register(_Rebalance)  # aiokafka's listener is an ABC


class ModelPipeline:
    def __init__(
        self,
        model: str,
        settings: WorkerSettings,
        repository: ModelRepository,
        producer: AIOKafkaProducer,
        executor: Executor,
        consumer: AIOKafkaConsumer,
        cancellations: Cancellations,
        on_assigned: Callable[[], None],
    ) -> None:
        self.on_assigned = on_assigned
        self.model = model
        self.settings = settings
        self.topics: Topics = settings.topics
        self.repository = repository
        self.executor = executor
        self.consumer = consumer
        self.cancellations = cancellations
        self.stats = PipelineStats()
        self.tracker = OffsetTracker()
        self.reader = Reader()
        self.assigned = asyncio.Event()
        self.batcher: Batcher[Job] = Batcher(
            settings.max_batch_size, settings.max_wait_ms, settings.max_buffered_jobs
        )
        outbox = Outbox(
            producer,
            batch_bytes=settings.producer_batch_bytes,
            max_record_bytes=MAX_REQUEST_BYTES,
            max_wait_s=ROOM_WAIT_S,
        )
        self.delivery = Delivery(outbox, settings.max_in_flight_batches, self.tracker)
        self._drained = asyncio.Event()
        self.rerun = Backoff(first_s=0.05, max_s=1.0, retries=settings.inference_retries)

    def listener(self) -> _Rebalance:
        return _Rebalance(self)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then finish every fetched job and commit."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._fetch(stop))
            tasks.create_task(self._infer())
            tasks.create_task(self._commit_periodically())

    async def _fetch(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                accepted, lost = await self.reader.fetch(
                    self.consumer, timeout_ms=100, max_records=self.settings.max_poll_records
                )
                self.tracker.forget(lost)
                await self._take_all(accepted, self.reader.generation)
        finally:
            await self.batcher.close()

    async def _take_all(self, accepted: dict[Any, list[Any]], generation: int) -> None:
        """Take the records of one fetch until a rebalance. `_take` waits while the batcher
        is full, and a rebalance may come meanwhile: it revokes every partition (aiokafka
        rebalances eagerly) and resets the positions of those given back to their
        committed offsets, so the rest of these records are read again by whoever holds
        their partitions now. Taking them here would track offsets the tracker forgot
        (and commit past records still running) or partitions this worker no longer
        holds (a commit the broker refuses)."""
        for partition, records in accepted.items():
            for record in records:
                if self.reader.generation != generation:
                    return
                await self._take(partition, record)

    async def _take(self, partition: Any, record: Any) -> None:
        self.tracker.started(partition, record.offset)
        origin = (partition, record.offset)
        prepared = self._prepare(record)
        if isinstance(prepared, Job):
            prepared.origin = origin
            if (instead := self._instead_of_running(prepared)) is not None:
                await self.delivery.send(instead, [origin])
                return
            prepared.enqueued = time.monotonic()
            await self.batcher.put(prepared)
            return
        self.stats.rejected += 1
        log.warning(
            "job at %s[%d]@%d rejected: %s",
            record.topic,
            record.partition,
            record.offset,
            prepared.message,
        )
        outgoing: list[Outgoing] = []
        if prepared.undecodable:
            outgoing.append((self.topics.dlq, dead_letter(record, prepared.code, prepared.message)))
        if prepared.event is not None:
            outgoing.append(encoded(self.topics.results, prepared.event))
        await self.delivery.send(outgoing, [origin])

    def _prepare(self, record: Any) -> Job | Rejected:
        if isinstance(record, UnreadableRecord):
            message = f"the Kafka client cannot parse this record: {record.error}"
            return Rejected(ErrorCode.MALFORMED_RECORD, message, None, undecodable=True)
        worker = self.settings.worker_name
        try:
            return prepare(record.key, record.value, record.headers, self.repository, worker=worker)
        except Exception as exc:  # a bug, not the input's fault: fail this job, keep serving
            log.exception("preparing the job at offset %d failed", record.offset)
            message = f"internal error while preparing the job: {exc}"
            job_id = job_id_from_key(record.key)
            tenant = tenant_from(record.value)
            event = (
                failed_event(job_id, ErrorCode.INTERNAL, message, worker=worker, tenant=tenant)
                if job_id
                else None
            )
            return Rejected(ErrorCode.INTERNAL, message, event, undecodable=True)

    async def _infer(self) -> None:
        loop = asyncio.get_running_loop()
        worker = self.settings.worker_name
        results = self.topics.results
        max_result_bytes = self.settings.max_result_bytes
        while (batch := await self.batcher.get()) is not None:
            outgoing: list[Outgoing] = []
            runnable: list[Job] = []
            for job in batch:  # checked again: a job may have waited in the batcher
                instead = self._instead_of_running(job)
                if instead is None:
                    runnable.append(job)
                else:
                    outgoing.extend(instead)
            if runnable:
                await self._announce_running(runnable)
                began = time.monotonic()
                records: list[KafkaRecord] = await loop.run_in_executor(
                    self.executor, run_batch, runnable, worker, self.rerun, max_result_bytes
                )
                self._ran(len(runnable), time.monotonic() - began)
                outgoing.extend((results, r) for r in records)
            origins = [job.origin for job in batch if job.origin is not None]
            await self.delivery.send(outgoing, origins)
        await self.delivery.drain()
        self._drained.set()

    def _ran(self, jobs: int, seconds: float) -> None:
        self.stats.batches += 1
        self.stats.batch_jobs += jobs
        self.stats.batch_seconds += seconds

    async def _announce_running(self, jobs: list[Job]) -> None:
        """`running` events for the jobs whose callback asked for them."""
        running = [
            encoded(self.topics.results, JobEvent.of_request(job.request, JobStatus.RUNNING))
            for job in jobs
            if job.request.callback is not None and job.request.callback.wants(JobStatus.RUNNING)
        ]
        if running:
            await self.delivery.send(running, [])

    def _instead_of_running(self, job: Job) -> list[Outgoing] | None:
        """What to publish for a job that must not run, or None when it should run.

        A cancelled job: its `cancelled` event came with the cancellation; it is written
        again here only when the job has a callback, which the canceller may not have known.
        A job past its deadline: an `expired` event."""
        request = job.request
        if request.job_id in self.cancellations:
            self.stats.cancelled += 1
            if request.callback is None:
                return []
            known = JobEvent.queued(request)
            return [encoded(self.topics.results, JobEvent.cancelled(request.job_id, known))]
        if job.request.deadline is not None and job.request.deadline <= utcnow():
            self.stats.expired += 1
            return [encoded(self.topics.results, expired_event(job, self.settings.worker_name))]
        return None

    async def _commit_periodically(self) -> None:
        interval = self.settings.commit_interval_ms / 1000
        while not self._drained.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), interval)
            await self.commit()

    async def commit(self) -> None:
        offsets = self.tracker.committable()
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            self.stats.commit_failures += 1
            log.warning("commit failed (%s): these jobs may run again elsewhere", exc)
            return
        self.tracker.committed(offsets)
