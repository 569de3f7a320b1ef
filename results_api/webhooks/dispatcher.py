"""Turn job events on the results topic into deliveries: one consumer group for all API
replicas, so each event is read by one of them and each delivery is made once."""

import asyncio
import json
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from inferq.commits import PeriodicCommits, consume_in_steps
from inferq.gaps import Reader
from results_api.models import JobView
from results_api.persist import stubbornly
from results_api.restart import restarting
from results_api.settings import ApiSettings
from results_api.webhooks.courier import Courier
from results_api.webhooks.deliveries import Delivery, DeliveryStore, delivery_id
from schemas import DecodeError, JobEvent, decode_event
from schemas.messages import event_kind, utcnow

log = logging.getLogger(__name__)


def webhook_body(event: JobEvent) -> str:
    """What is POSTed: the Standard Webhooks envelope around the job's view."""
    view = JobView.of(event).model_dump(mode="json", exclude_none=True)
    envelope = {"type": f"job.{event.status.value}", "timestamp": utcnow().isoformat()}
    return json.dumps({**envelope, "data": view}, separators=(",", ":"))


def delivery_of(event: JobEvent, now: float) -> Delivery | None:
    """The delivery an event asks for, if its job has a callback that wants it."""
    callback = event.callback
    kind = event_kind(event.status)
    if callback is None or kind is None or kind not in callback.events:
        return None
    return Delivery(
        id=delivery_id(event.job_id, kind),
        job_id=event.job_id,
        event=kind,
        url=str(callback.url),
        tenant=event.tenant,
        body=webhook_body(event),
        next_try_at=now,
        created_at=now,
    )


class Dispatcher:
    def __init__(self, settings: ApiSettings, store: DeliveryStore, courier: Courier) -> None:
        self._settings = settings
        self._store = store
        self._courier = courier
        self._reader = Reader()
        self.assigned = False
        self.skipped = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop`; after an unexpected error, start over from the committed
        offsets (events read again make no second delivery: deliveries are keyed by id)."""
        await restarting(self._consume, stop, "webhook dispatch", self._unassigned)

    def _unassigned(self) -> None:
        self.assigned = False

    async def _consume(self, stop: asyncio.Event) -> None:
        s = self._settings
        await consume_in_steps(
            s,
            s.topics.results,
            s.webhook_group_id,
            lambda consumer, commits: self._step(consumer, commits, stop),
            stop,
            "webhook dispatcher commit failed (%s); events are read again",
        )

    async def _step(
        self, consumer: AIOKafkaConsumer, commits: PeriodicCommits, stop: asyncio.Event
    ) -> None:
        accepted, lost = await self._reader.fetch(consumer, timeout_ms=500)
        self.assigned = bool(consumer.assignment())
        commits.forget(lost)
        if not accepted:
            return
        now = time.time()
        deliveries = [
            delivery
            for records in accepted.values()
            for record in records
            if (delivery := self._delivery(record, now)) is not None
        ]
        added: list[Delivery] = []

        async def add() -> None:
            added.extend(await self._store.add(deliveries))

        if not await stubbornly(add, stop, "webhook dispatch"):
            return  # stopped: the events are read again after a restart
        if added:
            self._courier.wake()
        commits.finished({tp: rs[-1].offset + 1 for tp, rs in accepted.items() if rs})

    def _delivery(self, record: Any, now: float) -> Delivery | None:
        if record.value is None or b'"callback"' not in record.value:
            return None  # most events have no callback: skip them undecoded
        if record.timestamp / 1000 < now - self._settings.result_retention_s:
            return None  # older than any delivery the store remembers: never send it again
        try:
            return delivery_of(decode_event(record.value, record.headers), now)
        except DecodeError as exc:
            self.skipped += 1
            log.error("skipping undecodable result at offset %d: %s", record.offset, exc)
            return None
