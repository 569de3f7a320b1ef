"""The service's own endpoints: health, readiness, metrics, and the models served."""

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from inferq.prometheus import CONTENT_TYPE, Sample, render
from results_api.errors import ApiError
from results_api.models import Health, ModelEntry, ModelList
from results_api.routes.common import Caller, Deps, errors
from results_api.services import Services
from schemas import ErrorCode

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["service"], summary="Liveness")
async def healthz() -> Health:
    """200 while the process serves HTTP at all; see /readyz for whether it can do work."""
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, responses=errors(503), tags=["service"], summary="Readiness"
)
async def readyz(deps: Deps) -> Health:
    """Ready when the broker answers, results ingestion (and webhook dispatch, when on) has
    partitions and the store reads."""
    if deps.broker.problem is not None:
        raise ApiError(503, ErrorCode.UNAVAILABLE, deps.broker.problem)
    if not deps.ingestor.assigned:
        raise ApiError(503, ErrorCode.UNAVAILABLE, "results ingestion has no partitions yet")
    if deps.webhooks is not None and not deps.webhooks.dispatcher.assigned:
        raise ApiError(503, ErrorCode.UNAVAILABLE, "webhook dispatch has no partitions yet")
    await deps.store.ping()
    return Health(status="ready")


def _samples(deps: Services) -> list[Sample]:
    ingestor = deps.ingestor
    samples: list[Sample] = [
        (
            "inferq_jobs_submitted_total",
            "counter",
            "jobs accepted by POST /v1/jobs",
            deps.counters.submitted,
        ),
        (
            "inferq_ingested_events_total",
            "counter",
            "job events read from the results topic",
            ingestor.ingested,
        ),
        (
            "inferq_ingest_skipped_total",
            "counter",
            "undecodable records on the results topic",
            ingestor.skipped,
        ),
        (
            "inferq_ingest_refetches_total",
            "counter",
            "offset jumps fetched again (inferq/gaps.py)",
            ingestor.refetches,
        ),
        (
            "inferq_ingest_assigned",
            "gauge",
            "1 when ingestion has partitions",
            float(ingestor.assigned),
        ),
        (
            "inferq_waiting_jobs",
            "gauge",
            "jobs with requests waiting on them",
            deps.waiters.watched,
        ),
    ]
    if deps.webhooks is not None:
        courier = deps.webhooks.courier
        samples += [
            (
                "inferq_webhook_attempts_total",
                "counter",
                "webhook tries made by this process",
                courier.attempts,
            ),
            (
                "inferq_webhook_delivered_total",
                "counter",
                "webhooks answered with a 2xx",
                courier.delivered,
            ),
            (
                "inferq_webhook_given_up_total",
                "counter",
                "webhooks dead-lettered",
                courier.given_up,
            ),
        ]
    return samples


@router.get(
    "/metrics", response_class=PlainTextResponse, tags=["service"], summary="Prometheus metrics"
)
async def metrics(deps: Deps) -> PlainTextResponse:
    """Counters and gauges of this process in the Prometheus text format."""
    return PlainTextResponse(render(_samples(deps)), media_type=CONTENT_TYPE)


@router.get(
    "/v1/models",
    response_model=ModelList,
    responses=errors(401),
    tags=["models"],
    summary="Served models",
)
async def list_models(deps: Deps, _: Caller) -> ModelList:
    """The models live workers serve, with their versions and tensor signatures."""
    return ModelList(
        models=[
            ModelEntry(**model.model_dump(), workers=workers)
            for model, workers in deps.directory.served()
        ]
    )
