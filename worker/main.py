"""The worker: loads the models, then runs one pipeline (consumer group) per model."""

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from inferq.admin import ensure_topics
from inferq.connections import consumer_options, producer_options
from inferq.health import BrokerWatch
from worker.cancels import CANCELS_FETCH_WAIT_MS, Cancellations
from worker.endpoint import Endpoint
from worker.pipeline import ModelPipeline
from worker.probes import routes
from worker.repository import ModelRepository, list_models
from worker.settings import WorkerSettings
from worker.upkeep import upkeep

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 10.0  # for the producer's last flush once serving has ended


class NoModelsError(RuntimeError):
    pass


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.ready = asyncio.Event()  # set once every model's consumer has partitions
        self.serving = asyncio.Event()  # set once it takes jobs
        self.pipelines: list[ModelPipeline] = []
        self.broker: BrokerWatch | None = None  # once the models are loaded
        self.port: int | None = None  # of /healthz, /readyz and /metrics, once listening

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
        endpoint = Endpoint(routes(self, stop))
        if self.settings.worker_port is not None:
            self.port = await endpoint.start(self.settings.worker_host, self.settings.worker_port)
            log.info("worker endpoint on %s:%d", self.settings.worker_host, self.port)
        try:
            await self._run(models, stop)
        finally:
            await endpoint.close()

    async def _run(self, models: list[str], stop: asyncio.Event) -> None:
        s = self.settings
        repository = await asyncio.to_thread(
            ModelRepository,
            s.model_repository,
            models,
            intra_op_threads=s.intra_op_threads,
            providers=s.execution_providers,
        )
        partitions = {
            **{self.topics.requests(m): s.request_partitions for m in models},
            self.topics.results: s.results_partitions,
            self.topics.dlq: s.request_partitions,
            self.topics.models: 1,
            self.topics.cancels: 1,
        }
        await ensure_topics(s, partitions)
        self.broker = broker = BrokerWatch(s, partitions)
        executor = ThreadPoolExecutor(len(models), thread_name_prefix="inferq-ort")
        producer = AIOKafkaProducer(**producer_options(s))
        await producer.start()
        cancellations = Cancellations(s.max_cancelled_jobs)
        try:
            async with contextlib.AsyncExitStack() as stack:
                cancels = AIOKafkaConsumer(
                    self.topics.cancels,
                    **{**consumer_options(s, None), "fetch_max_wait_ms": CANCELS_FETCH_WAIT_MS},
                )
                await cancels.start()
                stack.push_async_callback(cancels.stop)
                for model in models:
                    consumer = AIOKafkaConsumer(
                        **consumer_options(s, self.topics.worker_group(model))
                    )
                    pipeline = ModelPipeline(
                        model,
                        s,
                        repository,
                        producer,
                        executor,
                        consumer,
                        cancellations,
                        self._assigned,
                    )
                    consumer.subscribe([self.topics.requests(model)], listener=pipeline.listener())
                    await consumer.start()
                    stack.push_async_callback(consumer.stop)
                    self.pipelines.append(pipeline)
                serving = asyncio.create_task(
                    self._serve(repository, producer, broker, (cancellations, cancels), stop)
                )
                await _drain_within(serving, stop, s.drain_timeout_s)
        finally:
            try:
                await asyncio.wait_for(producer.stop(), _CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("the producer did not close within %.0f s", _CLOSE_TIMEOUT_S)
            executor.shutdown(wait=True)

    async def _serve(
        self,
        repository: ModelRepository,
        producer: AIOKafkaProducer,
        broker: BrokerWatch,
        cancels: tuple[Cancellations, AIOKafkaConsumer],
        stop: asyncio.Event,
    ) -> None:
        s = self.settings
        cancellations, consumer = cancels
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(cancellations.follow(consumer, stop))
            tasks.create_task(broker.run(stop))
            # Jobs cancelled before this worker started must not run: read them all first.
            await cancellations.caught_up.wait()
            served = ", ".join(p.model for p in self.pipelines)
            log.info("worker %s serving %s", s.worker_name, served)
            self.serving.set()
            tasks.create_task(upkeep(repository, producer, s, stop))
            for pipeline in self.pipelines:
                tasks.create_task(pipeline.run(stop))

    def _assigned(self) -> None:
        if all(p.assigned.is_set() for p in self.pipelines):
            self.ready.set()


async def _drain_within(serving: "asyncio.Task[None]", stop: asyncio.Event, grace_s: float) -> None:
    """Wait for `serving` to end; once `stop` is set, give it `grace_s` to drain, then cancel
    it: whatever it had not committed runs again on another worker."""
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not serving.done():
        done, _ = await asyncio.wait([serving], timeout=grace_s)
        if not done:
            log.warning(
                "drain did not finish within %.1f s (INFERQ_DRAIN_TIMEOUT_S): leaving now; "
                "jobs not committed will run again on another worker",
                grace_s,
            )
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            return
    serving.result()
