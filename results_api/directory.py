"""The models the workers serve: read from `<prefix>.models` (every announcement, no group),
keeping each worker's latest; a worker silent for three of its intervals is gone."""

import asyncio
import logging
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from inferq.connections import aiokafka_options
from inferq.fetching import getmany
from results_api.settings import ApiSettings
from schemas import utcnow
from schemas.catalog import Announcement, ServedModel

log = logging.getLogger(__name__)

_MISSED_BEATS = 3


class ModelDirectory:
    def __init__(self, settings: ApiSettings) -> None:
        self._settings = settings
        self._latest: dict[str, Announcement] = {}

    async def run(self, stop: asyncio.Event) -> None:
        s = self._settings
        consumer = AIOKafkaConsumer(
            **aiokafka_options(s), enable_auto_commit=False, fetch_max_wait_ms=100
        )
        await consumer.start()
        try:
            topic = s.topics.models
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or {0}
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while not stop.is_set():
                fetched = await getmany(consumer, timeout_ms=200)
                for records in fetched.values():
                    for record in records:
                        self._note(record.value)
        finally:
            await consumer.stop()

    def _note(self, value: bytes) -> None:
        try:
            announcement = Announcement.model_validate_json(value)
        except ValidationError as exc:
            log.error("skipping an unreadable model announcement: %s", exc)
            return
        self._latest[announcement.worker] = announcement

    def served(self) -> list[tuple[ServedModel, list[str]]]:
        """Each model with the live workers serving it (its description from the newest)."""
        now = utcnow()
        by_model: dict[str, tuple[ServedModel, list[str]]] = {}
        live = sorted(
            (
                a
                for a in self._latest.values()
                if now - a.announced_at <= timedelta(seconds=_MISSED_BEATS * a.interval_s)
            ),
            key=lambda a: a.announced_at,
        )
        for announcement in live:
            for model in announcement.models:
                workers = by_model.get(model.name, (model, []))[1]
                by_model[model.name] = (model, [*workers, announcement.worker])
        return [by_model[name] for name in sorted(by_model)]
