"""Every `refresh_interval_s`: load new model versions, then announce what this worker serves
on `<prefix>.models`, where the results API reads it for `GET /v1/models`."""

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas import Datatype, utcnow
from schemas.catalog import Announcement, ServedModel, TensorSpec
from worker.repository import ModelRepository
from worker.runtime import IoSpec
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


def _spec(spec: IoSpec) -> TensorSpec:
    shape = [-1 if dim is None else dim for dim in spec.shape]
    return TensorSpec(name=spec.name, datatype=Datatype(spec.datatype), shape=shape)


def served(repository: ModelRepository, max_batch_size: int) -> list[ServedModel]:
    described = []
    for name in repository.models:
        model = repository.get(name)
        own = model.config.max_batch_size
        described.append(
            ServedModel(
                name=name,
                versions=repository.versions(name),
                default_version=model.version,
                inputs=[_spec(s) for s in model.inputs.values()],
                outputs=[_spec(s) for s in model.outputs.values()],
                max_batch_size=min(own, max_batch_size) if own else max_batch_size,
            )
        )
    return described


async def upkeep(
    repository: ModelRepository,
    producer: AIOKafkaProducer,
    settings: WorkerSettings,
    stop: asyncio.Event,
) -> None:
    interval = settings.refresh_interval_s
    while not stop.is_set():
        for loaded in await asyncio.to_thread(repository.refresh):
            log.info("loaded new model version %s", loaded)
        announcement = Announcement(
            worker=settings.worker_name,
            models=served(repository, settings.max_batch_size),
            announced_at=utcnow(),
            interval_s=interval,
        )
        try:
            await producer.send_and_wait(
                settings.topics.models,
                key=settings.worker_name.encode(),
                value=announcement.model_dump_json().encode(),
            )
        except KafkaError as exc:
            log.warning("could not announce the served models: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
