"""The worker: loads the models, then runs one pipeline (consumer group) per model."""

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from inferq.admin import ensure_topics
from inferq.connections import consumer_options, producer_options
from worker.pipeline import ModelPipeline
from worker.repository import ModelRepository, list_models
from worker.settings import WorkerSettings
from worker.upkeep import upkeep

log = logging.getLogger(__name__)


class NoModelsError(RuntimeError):
    pass


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.ready = asyncio.Event()  # set once every model's consumer has partitions
        self.pipelines: list[ModelPipeline] = []

    def served_models(self) -> list[str]:
        models = self.settings.models or list_models(self.settings.model_repository)
        if not models:
            raise NoModelsError(
                f"no models in {self.settings.model_repository.resolve()}: expected "
                "<repo>/<model>/<version>/model.onnx (try `inferq models build-demo`)"
            )
        return models

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, finish what was fetched, commit, leave the groups."""
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
                self.topics.models: 1,
            },
        )
        executor = ThreadPoolExecutor(len(models), thread_name_prefix="inferq-ort")
        producer = AIOKafkaProducer(**producer_options(s))
        await producer.start()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for model in models:
                    consumer = AIOKafkaConsumer(
                        **consumer_options(s, self.topics.worker_group(model))
                    )
                    pipeline = ModelPipeline(
                        model, s, repository, producer, executor, consumer, self._assigned
                    )
                    consumer.subscribe([self.topics.requests(model)], listener=pipeline.listener())
                    await consumer.start()
                    stack.push_async_callback(consumer.stop)
                    self.pipelines.append(pipeline)
                log.info("worker %s serving %s", s.worker_name, ", ".join(models))
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(upkeep(repository, producer, s, stop))
                    for pipeline in self.pipelines:
                        tasks.create_task(pipeline.run(stop))
        finally:
            await producer.stop()
            executor.shutdown(wait=True)

    def _assigned(self) -> None:
        if all(p.assigned.is_set() for p in self.pipelines):
            self.ready.set()
