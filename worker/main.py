"""The worker loop: fetch, prepare, run, publish, then commit what was acknowledged."""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from inferq.admin import ensure_topics
from inferq.connections import consumer_options, producer_options
from schemas import JobEvent
from worker.execute import batches, run_batch
from worker.jobs import Job, Rejected, prepare
from worker.publisher import Publisher
from worker.repository import ModelRepository, list_models
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

_RETRY_DELAY_S = 1.0


class NoModelsError(RuntimeError):
    pass


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.ready = asyncio.Event()  # set once every model's consumer has partitions
        self.processed = 0
        self._unassigned = 0

    def served_models(self) -> list[str]:
        models = self.settings.models or list_models(self.settings.model_repository)
        if not models:
            raise NoModelsError(
                f"no models in {self.settings.model_repository.resolve()}: expected "
                "<repo>/<model>/<version>/model.onnx (try `inferq models build-demo`)"
            )
        return models

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then leave the group cleanly."""
        models = self.served_models()
        s = self.settings
        repository = await asyncio.to_thread(
            ModelRepository,
            s.model_repository,
            models,
            intra_op_threads=s.intra_op_threads,
            providers=s.execution_providers,
        )
        await ensure_topics(
            s,
            {
                **{self.topics.requests(m): s.request_partitions for m in models},
                self.topics.results: s.results_partitions,
                self.topics.dlq: s.request_partitions,
            },
        )
        producer = AIOKafkaProducer(**producer_options(s))
        await producer.start()
        try:
            consumers = [
                AIOKafkaConsumer(
                    self.topics.requests(m), **consumer_options(s, self.topics.worker_group(m))
                )
                for m in models
            ]
            async with contextlib.AsyncExitStack() as stack:
                for consumer in consumers:
                    await consumer.start()
                    stack.push_async_callback(consumer.stop)
                log.info("worker %s serving %s", s.worker_name, ", ".join(models))
                self._unassigned = len(consumers)
                async with asyncio.TaskGroup() as tasks:
                    for consumer in consumers:
                        # A publisher per loop: each waits only for its own acknowledgements.
                        publisher = Publisher(producer, self.topics)
                        tasks.create_task(self._loop(consumer, publisher, repository, stop))
        finally:
            await producer.stop()

    async def _loop(
        self,
        consumer: AIOKafkaConsumer,
        publisher: Publisher,
        repository: ModelRepository,
        stop: asyncio.Event,
    ) -> None:
        assigned = False
        while not stop.is_set():
            fetched: dict[TopicPartition, list[Any]] = await consumer.getmany(
                timeout_ms=100, max_records=self.settings.max_poll_records
            )
            if not assigned and consumer.assignment():
                assigned = True
                self._mark_assigned()
            if not fetched:
                continue
            try:
                await self._handle(fetched, publisher, repository)
            except KafkaError as exc:
                log.warning("publishing failed (%s); fetching the batch again", exc)
                for tp, records in fetched.items():
                    consumer.seek(tp, records[0].offset)
                await asyncio.sleep(_RETRY_DELAY_S)
                continue
            offsets = {tp: records[-1].offset + 1 for tp, records in fetched.items()}
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("commit failed (%s): another worker will process these again", exc)
            self.processed += sum(len(r) for r in fetched.values())

    def _mark_assigned(self) -> None:
        self._unassigned -= 1
        if self._unassigned == 0:
            self.ready.set()

    async def _handle(
        self,
        fetched: dict[TopicPartition, list[Any]],
        publisher: Publisher,
        repository: ModelRepository,
    ) -> None:
        jobs: list[Job] = []
        name = self.settings.worker_name
        for records in fetched.values():
            for record in records:
                prepared = prepare(
                    record.key, record.value, record.headers, repository, worker=name
                )
                if isinstance(prepared, Job):
                    jobs.append(prepared)
                    continue
                await self._reject(record, prepared, publisher)
        for event in await asyncio.to_thread(self._run, jobs):
            await publisher.event(event)
        await publisher.acknowledged()

    async def _reject(self, record: Any, rejected: Rejected, publisher: Publisher) -> None:
        log.warning(
            "job at %s[%d]@%d rejected: %s",
            record.topic,
            record.partition,
            record.offset,
            rejected.message,
        )
        if rejected.undecodable:
            await publisher.dead_letter(record, rejected.code, rejected.message)
        if rejected.event is not None:
            await publisher.event(rejected.event)

    def _run(self, jobs: Sequence[Job]) -> list[JobEvent]:
        name = self.settings.worker_name
        return [
            event
            for batch in batches(list(jobs), self.settings.max_batch_size)
            for event in run_batch(batch, name)
        ]
