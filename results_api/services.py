"""What the request handlers share, created and torn down by the app's lifespan."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import Request

from inferq.admin import ensure_topics
from inferq.connections import aiokafka_options, producer_options
from inferq.health import BrokerWatch
from results_api.auth import Keys
from results_api.backlog import Backlog
from results_api.catalog import ModelCatalog
from results_api.directory import ModelDirectory
from results_api.ingest import Ingestor
from results_api.metrics import Counters
from results_api.settings import ApiSettings
from results_api.store import ResultStore, open_store
from results_api.upkeep import purge_periodically
from results_api.waiters import JobWaiters
from results_api.webhooks.service import Webhooks, running_webhooks


@dataclass
class Services:
    settings: ApiSettings
    store: ResultStore
    producer: AIOKafkaProducer
    catalog: ModelCatalog
    ingestor: Ingestor
    waiters: JobWaiters
    directory: ModelDirectory
    backlog: Backlog
    broker: BrokerWatch
    keys: Keys
    webhooks: Webhooks | None
    counters: Counters = field(default_factory=Counters)


@contextlib.asynccontextmanager
async def running_services(settings: ApiSettings) -> AsyncIterator[Services]:
    topics = settings.topics
    partitions = {
        topics.results: settings.results_partitions,
        topics.dlq: settings.request_partitions,
        topics.models: 1,
        topics.cancels: 1,
    }
    if settings.webhook_secrets:
        partitions[topics.webhooks_dead] = 1
    keys = Keys(settings.api_keys)
    await ensure_topics(settings, partitions)
    broker = BrokerWatch(settings, partitions)
    async with contextlib.AsyncExitStack() as stack:
        store = await open_store(
            settings.store, retention_s=settings.result_retention_s, namespace=settings.topic_prefix
        )
        stack.push_async_callback(store.close)
        producer = AIOKafkaProducer(
            **producer_options(settings),
            request_timeout_ms=int(settings.submit_timeout_s * 1000),
        )
        await producer.start()
        stack.push_async_callback(producer.stop)
        # What a submit asks the broker first (topics, backlog) waits no longer than its send.
        asked_within = {"request_timeout_ms": int(settings.submit_timeout_s * 1000)}
        admin = AIOKafkaAdminClient(**aiokafka_options(settings), **asked_within)
        await admin.start()
        stack.push_async_callback(admin.close)
        offsets = AIOKafkaConsumer(**aiokafka_options(settings), **asked_within)
        await offsets.start()
        stack.push_async_callback(offsets.stop)
        backlog = Backlog(admin, offsets, topics, settings.backlog_refresh_ms / 1000)
        waiters = JobWaiters()
        ingestor = Ingestor(settings, store, waiters)
        directory = ModelDirectory(settings)
        webhooks = await stack.enter_async_context(running_webhooks(settings, producer))
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(ingestor.run(stop), name="inferq-ingest"),
            asyncio.create_task(directory.run(stop), name="inferq-models"),
            asyncio.create_task(broker.run(stop), name="inferq-broker-watch"),
            asyncio.create_task(
                store.watch(waiters.notify, waiters.wake_all, stop), name="inferq-store-watch"
            ),
            asyncio.create_task(
                purge_periodically(store, webhooks, settings.result_retention_s, stop),
                name="inferq-purge",
            ),
        ]

        async def stop_tasks() -> None:
            stop.set()
            await asyncio.gather(*tasks)

        stack.push_async_callback(stop_tasks)
        yield Services(
            settings,
            store,
            producer,
            ModelCatalog(admin, topics),
            ingestor,
            waiters,
            directory,
            backlog,
            broker,
            keys,
            webhooks,
        )


async def services(request: Request) -> Services:
    """The running services (`async`: FastAPI runs a plain `def` dependency in a thread pool,
    a thread hop per request that took a fifth of the API's CPU per read)."""
    found: Services = request.app.state.services
    return found
