"""Act on a job: cancel it, or send its webhook again."""

import time

from fastapi import APIRouter, Response

from producer.requests import cancel_records
from results_api.errors import ApiError
from results_api.models import JobView
from results_api.routes.common import Caller, Deps, errors, find_job
from results_api.routes.jobs import send, until_terminal, view
from schemas import ErrorCode, JobEvent, JobStatus

router = APIRouter(tags=["jobs"])


@router.post(
    "/v1/jobs/{job_id}/cancel",
    response_model=JobView,
    response_model_exclude_none=True,
    responses={
        202: {"model": JobView, "description": "cancellation sent; its outcome is not known yet"},
        **errors(401, 404, 409, 422, 503),
    },
    summary="Cancel a job",
)
async def cancel_job(job_id: str, deps: Deps, tenant: Caller, response: Response) -> JobView:
    """Stop a job that has not run yet: 200 with the job `cancelled`. A job that ended
    before the cancellation arrived answers 409; if neither is known within
    `INFERQ_CANCEL_WAIT_MS`, 202 with the job as it stands."""
    with deps.waiters.watch(job_id) as changed:
        event = await find_job(job_id, changed, deps, tenant)
        if not event.status.terminal:
            await send(cancel_records(deps.settings.topics, job_id, event), deps)
            event = await until_terminal(event, changed, deps, deps.settings.cancel_wait_ms / 1000)
    if event.status is JobStatus.CANCELLED:
        return await view(event, deps)
    if event.status.terminal:
        raise ApiError(
            409,
            ErrorCode.JOB_FINISHED,
            f"job '{job_id}' has already ended {event.status.value}: only a job that has not "
            "finished can be cancelled",
        )
    response.status_code = 202
    return await view(event, deps)


@router.post(
    "/v1/jobs/{job_id}/webhook/retry",
    status_code=202,
    response_model=JobView,
    response_model_exclude_none=True,
    responses=errors(401, 404, 409, 422),
    summary="Send a job's webhook again",
)
async def retry_webhook(job_id: str, deps: Deps, tenant: Caller) -> JobView:
    """Make every delivery of the job's callback pending again, due now, on a fresh
    schedule and with the same `webhook-id` (also after it was delivered or given up;
    a URL that answered 410 Gone may be tried again)."""
    with deps.waiters.watch(job_id) as changed:
        event = await find_job(job_id, changed, deps, tenant)
    webhooks = deps.webhooks
    again = await webhooks.deliveries.retry(job_id, time.time()) if webhooks else []
    if webhooks is None or not again:
        raise ApiError(409, ErrorCode.NO_WEBHOOK, _nothing_to_deliver(event))
    webhooks.courier.wake()
    return JobView.of(event, again)


def _nothing_to_deliver(event: JobEvent) -> str:
    if event.callback is None:
        return f"job '{event.job_id}' has no callback"
    when = "ends" if event.callback.events == ["completed"] else "starts or ends"
    return f"job '{event.job_id}' has nothing to deliver yet: its callback is sent when it {when}"
