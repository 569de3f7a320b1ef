"""Submit a job, and read it (at once or once it ends)."""

import asyncio
import contextlib
import logging
import math
import re
import time
from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, Query, Response

from producer.requests import PayloadTooLarge, submit_records
from results_api.auth import visible
from results_api.errors import ApiError
from results_api.models import JobAccepted, JobView, SubmitJob
from results_api.routes.common import Caller, Deps, errors, find_job
from results_api.services import Services
from results_api.store import StoreError
from results_api.webhooks.ssrf import CallbackRefused, check_callback_url
from schemas import ErrorCode, InferenceRequest, JobEvent
from schemas.codec import KafkaRecord
from schemas.tensors import TensorError

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])
MAX_WAIT_S = 60.0
STOPPING_RETRY_AFTER_S = 1  # a long-poll cut short by a stop: when to ask again
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d+(?:\.\d+)?)", re.IGNORECASE)


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses=errors(401, 404, 409, 413, 422, 429, 503),
    summary="Submit a job",
)
async def submit_job(
    body: SubmitJob, response: Response, deps: Deps, tenant: Caller
) -> JobAccepted:
    """Queue a prediction job. The job is readable at the `Location` at once, as `queued`.

    With a `callback`, the job is POSTed to its URL, signed, when it ends (see the webhook
    contract in the README); the URL must reach a public address."""
    request = InferenceRequest(**body.model_dump(exclude_none=True), tenant=tenant)
    response.headers["Location"] = f"/v1/jobs/{request.job_id}"
    if body.job_id is not None:
        existing = await deps.store.get(body.job_id)
        if existing is not None:  # the job id is the idempotency key
            if not visible(existing.tenant, tenant, deps.keys.enabled):
                raise ApiError(
                    409, ErrorCode.JOB_ID_TAKEN, f"job id '{body.job_id}' is taken: choose another"
                )
            return JobAccepted(job_id=existing.job_id, status=existing.status)
    _check_inputs(request)
    await _check_callback(request, deps)
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
    await send(records, deps)
    queued = JobEvent.queued(request)
    try:
        await deps.store.apply([queued])
    except StoreError as exc:  # the job is accepted: ingestion stores its queued event
        log.warning("job %s accepted, not stored yet: %s", request.job_id, exc)
    deps.counters.submitted += 1
    return JobAccepted(job_id=request.job_id, status=queued.status)


async def _check_callback(request: InferenceRequest, deps: Services) -> None:
    if request.callback is None:
        return
    if deps.webhooks is None:
        raise ApiError(
            422,
            ErrorCode.INVALID_REQUEST,
            "webhooks are off on this server (no INFERQ_WEBHOOK_SECRET): poll GET /v1/jobs/{id}",
        )
    try:
        await check_callback_url(str(request.callback.url), deps.settings.allowed_networks)
    except CallbackRefused as exc:
        raise ApiError(422, exc.code, str(exc)) from exc


async def _check_backlog(model: str, deps: Services) -> None:
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


async def send(records: list[tuple[str, KafkaRecord]], deps: Services) -> None:
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
    responses=errors(401, 404, 422, 503),
    summary="Read a job's status and result",
)
async def get_job(
    job_id: str,
    deps: Deps,
    tenant: Caller,
    response: Response,
    wait: Annotated[
        float | None,
        Query(
            ge=0, le=MAX_WAIT_S, description="hold the request until the job is terminal, up to N s"
        ),
    ] = None,
    prefer: Annotated[str | None, Header(description="`wait=N`, as RFC 7240")] = None,
) -> JobView:
    """The job now or, with `?wait=N` or `Prefer: wait=N`, once terminal (at most N s).

    A server that is stopping answers a long-poll at once, as the job stands, with
    `Retry-After: 1`: ask again then (another replica, or this one restarted)."""
    seconds = wait if wait is not None else preferred_wait(prefer)
    if seconds and wait is None:
        response.headers["Preference-Applied"] = f"wait={seconds:g}"
    with deps.waiters.watch(job_id) as changed:
        event = await find_job(job_id, changed, deps, tenant)
        event = await until_terminal(event, changed, deps, seconds or 0)
    if seconds and deps.waiters.closing and not event.status.terminal:
        response.headers["Retry-After"] = str(STOPPING_RETRY_AFTER_S)
    return await view(event, deps)


async def view(event: JobEvent, deps: Services) -> JobView:
    """The job's view, with its webhook deliveries when it has any (looked up even when the
    stored event names no callback: an SDK cancellation does not know the job's)."""
    if deps.webhooks is None:
        return JobView.of(event)
    return JobView.of(event, await deps.webhooks.deliveries.of_job(event.job_id))


async def until_terminal(
    event: JobEvent, changed: asyncio.Event, deps: Services, seconds: float
) -> JobEvent:
    """The job's event once terminal, or its latest after `seconds` (or at once when the
    server stops)."""
    deadline = time.monotonic() + seconds
    while (
        not event.status.terminal
        and not deps.waiters.closing
        and (left := deadline - time.monotonic()) > 0
    ):
        # `changed` was watched before `event` was read: news since then has set it
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), left)
        changed.clear()  # before the read, so news after the read sets it again
        event = await deps.store.get(event.job_id) or event
    return event


def preferred_wait(prefer: str | None) -> float | None:
    """The `wait` preference of a Prefer header, capped at MAX_WAIT_S; None if absent."""
    match = _PREFER_WAIT.search(prefer or "")
    return min(float(match.group(1)), MAX_WAIT_S) if match else None
