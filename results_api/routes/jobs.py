"""The HTTP endpoints."""

import asyncio
import contextlib
import math
import re
import time
from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import PlainTextResponse

from producer.requests import PayloadTooLarge, cancel_records, submit_records
from results_api.errors import ApiError, ErrorResponse
from results_api.metrics import CONTENT_TYPE, render
from results_api.models import Health, JobAccepted, JobView, ModelEntry, ModelList, SubmitJob
from results_api.services import Services, services
from schemas import ErrorCode, InferenceRequest, JobEvent, JobStatus
from schemas.codec import KafkaRecord
from schemas.tensors import TensorError

router = APIRouter()
MAX_WAIT_S = 60.0
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d+(?:\.\d+)?)", re.IGNORECASE)
Deps = Annotated[Services, Depends(services)]


def _errors(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"model": ErrorResponse} for code in codes}


_ERRORS = _errors(404, 422, 503)


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses=_errors(404, 413, 422, 429, 503),
    summary="Submit a job",
    tags=["jobs"],
)
async def submit_job(body: SubmitJob, response: Response, deps: Deps) -> JobAccepted:
    """Queue a prediction job. The job is readable at the `Location` at once, as `queued`."""
    if body.callback is not None:
        raise ApiError(
            422,
            ErrorCode.INVALID_REQUEST,
            "webhook callbacks are not available yet: poll GET /v1/jobs/{job_id}",
        )
    request = InferenceRequest(**body.model_dump(exclude_none=True))
    response.headers["Location"] = f"/v1/jobs/{request.job_id}"
    if body.job_id is not None:
        existing = await deps.store.get(body.job_id)
        if existing is not None:  # the job id is the idempotency key
            return JobAccepted(job_id=existing.job_id, status=existing.status)
    _check_inputs(request)
    if not await deps.catalog.served(request.model):
        raise ApiError(
            404,
            ErrorCode.MODEL_NOT_FOUND,
            f"model '{request.model}' is not served: no worker has created its topic",
        )
    await _check_backlog(request.model, deps)
    try:
        records = submit_records(deps.settings.topics, request, deps.settings.max_request_bytes)
    except PayloadTooLarge as exc:
        raise ApiError(413, exc.code, str(exc)) from exc
    await _send(records, deps)
    queued = JobEvent.queued(request)
    await deps.store.apply([queued])
    deps.counters.submitted += 1
    return JobAccepted(job_id=request.job_id, status=queued.status)


async def _check_backlog(model: str, deps: Deps) -> None:
    limit = deps.settings.max_backlog
    if not limit:
        return
    backlog = await deps.backlog.of(model)
    if backlog is not None and backlog > limit:
        retry_after = max(1, math.ceil(deps.settings.backlog_refresh_ms / 1000))
        raise ApiError(
            429,
            ErrorCode.BACKLOG_FULL,
            f"model '{model}' has {backlog} jobs waiting, over the limit of {limit} "
            "(INFERQ_MAX_BACKLOG): try again later",
            {"Retry-After": str(retry_after)},
        )


async def _send(records: list[tuple[str, KafkaRecord]], deps: Deps) -> None:
    """Send records and wait for the broker to acknowledge them all."""
    try:
        sent = [
            await deps.producer.send(topic, key=r.key, value=r.value, headers=r.headers)
            for topic, r in records
        ]
        await asyncio.gather(*sent)
    except KafkaError as exc:
        raise ApiError(
            503,
            ErrorCode.UNAVAILABLE,
            f"the broker did not take the records: {exc}",
            {"Retry-After": "1"},
        ) from exc


def _check_inputs(request: InferenceRequest) -> None:
    for tensor in request.inputs:
        try:
            tensor.to_numpy()
        except TensorError as exc:
            raise ApiError(422, exc.code, str(exc)) from exc


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobView,
    response_model_exclude_none=True,
    responses=_ERRORS,
    summary="Read a job's status and result",
    tags=["jobs"],
)
async def get_job(
    job_id: str,
    deps: Deps,
    response: Response,
    wait: Annotated[
        float | None,
        Query(
            ge=0, le=MAX_WAIT_S, description="hold the request until the job is terminal, up to N s"
        ),
    ] = None,
    prefer: Annotated[str | None, Header(description="`wait=N`, as RFC 7240")] = None,
) -> JobView:
    """The job now or, with `?wait=N` or `Prefer: wait=N`, once terminal (at most N s)."""
    seconds = wait if wait is not None else preferred_wait(prefer)
    if seconds and wait is None:
        response.headers["Preference-Applied"] = f"wait={seconds:g}"
    with deps.waiters.watch(job_id) as changed:
        event = await deps.store.get(job_id)
        if event is None:
            event = await _after_catching_up(job_id, changed, deps)
        if event is None:
            raise ApiError(404, ErrorCode.JOB_NOT_FOUND, f"no job with id '{job_id}'")
        event = await _until_terminal(event, changed, deps, seconds or 0)
    return JobView.of(event)


async def _until_terminal(
    event: JobEvent, changed: asyncio.Event, deps: Deps, seconds: float
) -> JobEvent:
    """The job's event once terminal, or its latest after `seconds`."""
    deadline = time.monotonic() + seconds
    while not event.status.terminal and (left := deadline - time.monotonic()) > 0:
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), left)
        event = await deps.store.get(event.job_id) or event
    return event


@router.post(
    "/v1/jobs/{job_id}/cancel",
    response_model=JobView,
    response_model_exclude_none=True,
    responses={
        202: {"model": JobView, "description": "cancellation sent; its outcome is not known yet"},
        **_errors(404, 409, 503),
    },
    summary="Cancel a job",
    tags=["jobs"],
)
async def cancel_job(job_id: str, deps: Deps, response: Response) -> JobView:
    """Stop a job that has not run yet: 200 with the job `cancelled`. A job that ended
    before the cancellation arrived answers 409; if neither is known within
    `INFERQ_CANCEL_WAIT_MS`, 202 with the job as it stands."""
    with deps.waiters.watch(job_id) as changed:
        event = await deps.store.get(job_id) or await _after_catching_up(job_id, changed, deps)
        if event is None:
            raise ApiError(404, ErrorCode.JOB_NOT_FOUND, f"no job with id '{job_id}'")
        if not event.status.terminal:
            await _send(cancel_records(deps.settings.topics, job_id, event), deps)
            event = await _until_terminal(event, changed, deps, deps.settings.cancel_wait_ms / 1000)
    if event.status is JobStatus.CANCELLED:
        return JobView.of(event)
    if event.status.terminal:
        raise ApiError(
            409,
            ErrorCode.JOB_FINISHED,
            f"job '{job_id}' has already ended {event.status.value}: only a job that has not "
            "finished can be cancelled",
        )
    response.status_code = 202
    return JobView.of(event)


def preferred_wait(prefer: str | None) -> float | None:
    """The `wait` preference of a Prefer header, capped at MAX_WAIT_S; None if absent."""
    match = _PREFER_WAIT.search(prefer or "")
    return min(float(match.group(1)), MAX_WAIT_S) if match else None


async def _after_catching_up(job_id: str, changed: asyncio.Event, deps: Deps) -> JobEvent | None:
    """A job unknown here may be in flight: wait for its event or for ingestion to catch up."""
    timeout = deps.settings.not_found_wait_ms / 1000
    since = time.monotonic()
    waits = [
        asyncio.create_task(changed.wait()),
        asyncio.create_task(deps.ingestor.caught_up(since)),
    ]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    return await deps.store.get(job_id)


@router.get("/healthz", response_model=Health, tags=["service"], summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, responses=_ERRORS, tags=["service"], summary="Readiness"
)
async def readyz(deps: Deps) -> Health:
    """Ready when the broker answers, results ingestion has partitions and the store reads."""
    if deps.broker.problem is not None:
        raise ApiError(503, ErrorCode.UNAVAILABLE, deps.broker.problem)
    if not deps.ingestor.assigned:
        raise ApiError(503, ErrorCode.UNAVAILABLE, "results ingestion has no partitions yet")
    await deps.store.ping()
    return Health(status="ready")


@router.get(
    "/metrics", response_class=PlainTextResponse, tags=["service"], summary="Prometheus metrics"
)
async def metrics(deps: Deps) -> PlainTextResponse:
    ingestor = deps.ingestor
    body = render(
        [
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
    )
    return PlainTextResponse(body, media_type=CONTENT_TYPE)


@router.get("/v1/models", response_model=ModelList, tags=["models"], summary="Served models")
async def list_models(deps: Deps) -> ModelList:
    """The models live workers serve, with their versions and tensor signatures."""
    return ModelList(
        models=[
            ModelEntry(**model.model_dump(), workers=workers)
            for model, workers in deps.directory.served()
        ]
    )
