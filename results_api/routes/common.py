"""What the endpoints share: their dependencies, error documentation and job lookup."""

import asyncio
import time
from asyncio import FIRST_COMPLETED
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from results_api.auth import visible
from results_api.errors import ApiError, ErrorResponse
from results_api.services import Services, services
from schemas import ErrorCode, JobEvent

Deps = Annotated[Services, Depends(services)]
_bearer = HTTPBearer(
    auto_error=False,
    description="an API key (`INFERQ_API_KEYS`); only needed when keys are configured",
)


async def caller(
    request: Request,
    deps: Deps,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The tenant of the request's API key (None with authentication off); 401 without one."""
    return deps.keys.tenant_of(request.headers.get("authorization"))


Caller = Annotated[str | None, Depends(caller)]


_EXAMPLES: dict[int, tuple[str, list[tuple[ErrorCode, str]]]] = {
    401: ("no valid API key", [(ErrorCode.UNAUTHORIZED, "missing bearer key")]),
    404: ("no such job (or another tenant's)", [(ErrorCode.JOB_NOT_FOUND, "no job with id 'abc'")]),
    409: (
        "the request conflicts with the job's state",
        [
            (
                ErrorCode.JOB_FINISHED,
                "job 'abc' has already ended succeeded: only a job that "
                "has not finished can be cancelled",
            ),
            (ErrorCode.JOB_ID_TAKEN, "job id 'abc' is taken: choose another"),
            (ErrorCode.NO_WEBHOOK, "job 'abc' has no callback"),
        ],
    ),
    413: (
        "the body is over INFERQ_MAX_REQUEST_BYTES",
        [
            (
                ErrorCode.PAYLOAD_TOO_LARGE,
                "the request body (2097152 bytes) is over the limit of "
                "1048576 bytes (INFERQ_MAX_REQUEST_BYTES)",
            )
        ],
    ),
    422: (
        "the request is not valid",
        [
            (ErrorCode.INVALID_REQUEST, "body.inputs: Field required"),
            (
                ErrorCode.INVALID_INPUT,
                "tensor 'input': shape [1, 30] needs 30 elements, data has 29",
            ),
            (
                ErrorCode.CALLBACK_REFUSED,
                "callback url host '10.0.0.7' is a private address: "
                "callbacks may only reach public addresses (allow networks with "
                "INFERQ_WEBHOOK_ALLOW_PRIVATE)",
            ),
        ],
    ),
    429: (
        "the model's backlog is over INFERQ_MAX_BACKLOG (see Retry-After)",
        [
            (
                ErrorCode.BACKLOG_FULL,
                "model 'diabetes' has 100412 jobs waiting, over the limit of "
                "100000 (INFERQ_MAX_BACKLOG): try again later",
            )
        ],
    ),
    503: (
        "the broker or the store does not answer (see Retry-After)",
        [(ErrorCode.UNAVAILABLE, "the broker did not take the records: KafkaTimeoutError")],
    ),
}


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI documentation of the error answers of an endpoint: one shape, examples of
    every code it can carry."""
    documented: dict[int | str, dict[str, object]] = {}
    for status in statuses:
        description, examples = _EXAMPLES[status]
        documented[status] = {
            "model": ErrorResponse,
            "description": description,
            "content": {
                "application/json": {
                    "examples": {
                        code.value: {"value": {"error": {"code": code, "message": message}}}
                        for code, message in examples
                    }
                }
            },
        }
    return documented


def not_found(job_id: str) -> ApiError:
    return ApiError(404, ErrorCode.JOB_NOT_FOUND, f"no job with id '{job_id}'")


async def find_job(
    job_id: str, changed: asyncio.Event, deps: Services, tenant: str | None
) -> JobEvent:
    """The job's event as stored, waiting briefly for one in flight; 404 when it is unknown
    or another tenant's."""
    event = await deps.store.get(job_id)
    if event is None or not visible(event.tenant, tenant, deps.keys.enabled):
        # another tenant's job takes as long to be "not found" as an unknown one
        wait_s = deps.settings.not_found_wait_ms / 1000
        event = await after_catching_up(job_id, changed, deps.store, deps.ingestor, wait_s)
    if event is None or not visible(event.tenant, tenant, deps.keys.enabled):
        raise not_found(job_id)
    return event


class Reads(Protocol):
    async def get(self, job_id: str) -> JobEvent | None: ...


class CatchesUp(Protocol):
    async def caught_up(self, since: float) -> None: ...


async def after_catching_up(
    job_id: str, changed: asyncio.Event, store: Reads, ingestor: CatchesUp, wait_s: float
) -> JobEvent | None:
    """A job unknown here may be in flight: its event from `store` once `changed` says it
    came, or None once `ingestor` has caught up or `wait_s` has passed. A wake that brings
    no event (every waiter is woken when the store's change feed comes back) is no answer:
    the wait goes on."""
    since = time.monotonic()
    deadline = since + wait_s
    caught_up = asyncio.create_task(ingestor.caught_up(since))
    woken = asyncio.create_task(changed.wait())
    try:
        while True:
            left = max(0.0, deadline - time.monotonic())
            await asyncio.wait([woken, caught_up], timeout=left, return_when=FIRST_COMPLETED)
            woken.cancel()
            changed.clear()  # before the read, so news after the read sets it again
            event = await store.get(job_id)
            if event is not None or caught_up.done() or time.monotonic() >= deadline:
                return event
            woken = asyncio.create_task(changed.wait())
    finally:
        caught_up.cancel()
        woken.cancel()
