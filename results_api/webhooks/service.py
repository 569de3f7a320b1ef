"""Webhooks in the results API: the delivery store, the dispatcher and the courier, started
and stopped with the app (nothing runs when no signing secret is set)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaProducer

from results_api.settings import ApiSettings
from results_api.sqlite_store import sqlite_path
from results_api.webhooks.attempt import Sender
from results_api.webhooks.courier import Courier, Pace
from results_api.webhooks.deliveries import Delivery, DeliveryStore
from results_api.webhooks.dispatcher import Dispatcher
from results_api.webhooks.redis_deliveries import RedisDeliveries
from results_api.webhooks.sqlite_deliveries import SQLiteDeliveries

LEASE_MARGIN_S = 30.0


@dataclass(frozen=True, slots=True)
class Webhooks:
    deliveries: DeliveryStore
    courier: Courier
    dispatcher: Dispatcher


async def open_deliveries(settings: ApiSettings) -> DeliveryStore:
    if settings.store.startswith(("redis://", "rediss://")):
        return await RedisDeliveries.connect(
            settings.store, settings.topic_prefix, settings.result_retention_s
        )
    return await SQLiteDeliveries(sqlite_path(settings.store), settings.result_retention_s).open()


@dataclass(frozen=True, slots=True)
class DeadLetterer:
    """Deliveries that ran out of tries go to `<prefix>.webhooks.dead`, body as sent."""

    producer: AIOKafkaProducer
    topic: str

    async def __call__(self, delivery: Delivery) -> None:
        headers = [
            ("webhook-id", delivery.id.encode()),
            ("url", delivery.url.encode()),
            ("reason", (delivery.last_error or "").encode()),
        ]
        await self.producer.send_and_wait(
            self.topic, key=delivery.job_id.encode(), value=delivery.body.encode(), headers=headers
        )


@contextlib.asynccontextmanager
async def running_webhooks(
    settings: ApiSettings, producer: AIOKafkaProducer
) -> AsyncIterator[Webhooks | None]:
    if not settings.webhook_secrets:
        yield None
        return
    async with contextlib.AsyncExitStack() as stack:
        deliveries = await open_deliveries(settings)
        stack.push_async_callback(deliveries.close)
        # No connection is kept: a pooled one is keyed by the address it reached, and the
        # next try to another host at that address must not be sent over it (TLS checked
        # the first host's certificate).
        client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        stack.push_async_callback(client.aclose)
        sender = Sender(
            client, settings.webhook_secrets, settings.allowed_networks, settings.webhook_timeout_s
        )
        pace = Pace(
            pauses=settings.retry_pauses,
            concurrency=settings.webhook_concurrency,
            poll_s=settings.webhook_poll_ms / 1000,
            lease_s=settings.webhook_timeout_s + LEASE_MARGIN_S,
        )
        courier = Courier(
            deliveries, sender, pace, DeadLetterer(producer, settings.topics.webhooks_dead)
        )
        dispatcher = Dispatcher(settings, deliveries, courier)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(courier.run(stop), name="inferq-webhook-courier"),
            asyncio.create_task(dispatcher.run(stop), name="inferq-webhook-dispatcher"),
        ]

        async def stop_tasks() -> None:
            stop.set()
            await asyncio.gather(*tasks)

        stack.push_async_callback(stop_tasks)
        yield Webhooks(deliveries, courier, dispatcher)
