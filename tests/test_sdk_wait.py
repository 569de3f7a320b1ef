"""`wait()` of both SDK clients: against the real stack, and against scripted API answers."""

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from inferq.demo_models import dataset
from inferq.devbroker import free_port
from producer import (
    ApiRefused,
    AsyncClient,
    Client,
    JobNotFound,
    JobTimeout,
    ProducerSettings,
    Unauthorized,
)
from producer.waiting import _Poll, wait_async
from results_api.settings import ApiSettings
from schemas import ErrorCode, JobEvent, JobStatus, Tensor
from schemas.errors import PermanentError, TransientError
from tests.support import run_onnx, running_api

Handler = Callable[[httpx.Request], httpx.Response]


def _sdk(settings: ProducerSettings, api: httpx.AsyncClient) -> ProducerSettings:
    return settings.model_copy(update={"api_url": str(api.base_url)})


def _output(outputs: list[Tensor] | None, name: str) -> Any:
    assert outputs is not None
    return next(t for t in outputs if t.name == name).to_numpy()


# Against the real stack: broker, worker, results API.


async def test_async_wait_returns_the_succeeded_job(
    api: httpx.AsyncClient, producer_settings: ProducerSettings, model_repo: Path
) -> None:
    rows = dataset("breast_cancer")[0][:1]
    async with AsyncClient(settings=_sdk(producer_settings, api)) as client:
        job_id = await client.submit("breast_cancer", {"input": rows})
        await client.flush()
        job = await client.wait(job_id, timeout=30)

    label, probabilities = run_onnx(model_repo, "breast_cancer", rows)
    assert job.job_id == job_id
    assert job.status is JobStatus.SUCCEEDED
    assert job.model == "breast_cancer"
    assert job.model_version == "1"
    assert _output(job.outputs, "label").tolist() == label.tolist()
    np.testing.assert_allclose(_output(job.outputs, "probabilities"), probabilities, atol=1e-5)


async def test_sync_wait_returns_the_succeeded_job(
    api: httpx.AsyncClient, producer_settings: ProducerSettings
) -> None:
    rows = dataset("breast_cancer")[0][1:2]

    def submit_and_wait() -> tuple[str, JobEvent]:
        with Client(settings=_sdk(producer_settings, api)) as client:
            job_id = client.submit("breast_cancer", {"input": rows}, metadata={"n": 1})
            client.flush()
            return job_id, client.wait(job_id, timeout=30)

    job_id, job = await asyncio.to_thread(submit_and_wait)
    assert job.job_id == job_id
    assert job.status is JobStatus.SUCCEEDED
    assert job.metadata == {"n": 1}
    assert job.outputs is not None
    assert [t.name for t in job.outputs] == ["label", "probabilities"]


async def test_wait_for_an_unknown_job_raises_job_not_found(
    api_without_worker: httpx.AsyncClient, producer_settings: ProducerSettings
) -> None:
    async with AsyncClient(settings=_sdk(producer_settings, api_without_worker)) as client:
        with pytest.raises(JobNotFound) as caught:
            await client.wait("no-such-job", timeout=1.5)
    assert str(caught.value) == "no job with id 'no-such-job' within 1.5 s"
    assert caught.value.status == 404
    assert caught.value.code is ErrorCode.JOB_NOT_FOUND
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, PermanentError)


@pytest.fixture
async def api_without_worker(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The results API with no worker: every job stays queued."""
    async with running_api(api_settings) as http:
        yield http


async def test_wait_times_out_on_a_job_no_worker_runs(
    api_without_worker: httpx.AsyncClient, producer_settings: ProducerSettings
) -> None:
    rows = dataset("breast_cancer")[0][:1]
    async with AsyncClient(settings=_sdk(producer_settings, api_without_worker)) as client:
        job_id = await client.submit("breast_cancer", {"input": rows})
        await client.flush()
        with pytest.raises(JobTimeout) as caught:
            await client.wait(job_id, timeout=2)

    error = caught.value
    assert str(error) == f"job '{job_id}' not terminal within 2 s (still queued)"
    assert error.last is not None
    assert error.last.job_id == job_id
    assert error.last.status is JobStatus.QUEUED
    assert error.__cause__ is None
    assert error.code is ErrorCode.DEADLINE_EXCEEDED
    assert isinstance(error, TimeoutError)
    assert isinstance(error, TransientError)


# Against scripted answers: what each status means, what is sent.

API = "http://api.test"
DONE = {"job_id": "j1", "status": "succeeded", "model": "m", "metadata": {"k": "v"}}


def _scripted(*answers: httpx.Response) -> tuple[Handler, list[httpx.Request]]:
    """A handler giving `answers` in turn (the last one again and again), and its requests."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return handle, seen


async def _wait(
    handler: Handler, within_s: float = 30.0, api_key: str | None = None, api_url: str = API
) -> JobEvent:
    settings = ProducerSettings(api_url=api_url, api_key=api_key)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        return await wait_async(http, settings, "j1", within_s)


async def test_sends_the_bearer_key_and_the_capped_wait() -> None:
    handler, seen = _scripted(httpx.Response(200, json=DONE))
    job = await _wait(handler, within_s=300, api_key="iq_secret")
    assert job.status is JobStatus.SUCCEEDED
    assert job.metadata == {"k": "v"}
    assert len(seen) == 1
    assert str(seen[0].url) == f"{API}/v1/jobs/j1?wait=60.000"
    assert seen[0].headers["Authorization"] == "Bearer iq_secret"


async def test_sends_no_authorization_without_a_key() -> None:
    handler, seen = _scripted(httpx.Response(200, json=DONE))
    await _wait(handler, api_url=f"{API}/")
    assert str(seen[0].url).startswith(f"{API}/v1/jobs/j1?wait=")
    assert "Authorization" not in seen[0].headers


async def test_a_wait_of_zero_asks_once() -> None:
    handler, seen = _scripted(httpx.Response(200, json=DONE))
    assert (await _wait(handler, within_s=0)).status is JobStatus.SUCCEEDED
    assert [str(r.url) for r in seen] == [f"{API}/v1/jobs/j1?wait=0.000"]
    queued = httpx.Response(200, json={"job_id": "j1", "status": "queued"})
    handler, seen = _scripted(queued)
    with pytest.raises(JobTimeout) as caught:
        await _wait(handler, within_s=0)
    assert str(caught.value) == "job 'j1' not terminal within 0 s (still queued)"
    assert len(seen) == 1


async def test_a_long_poll_may_not_outlast_the_deadline_by_much() -> None:
    """An API that holds the request past its wait is given up on half a second after the
    deadline, not five (the margin of a long-poll that has time left)."""
    handler, seen = _scripted(httpx.Response(200, json=DONE))
    await _wait(handler, within_s=2)
    read = seen[0].extensions["timeout"]["read"]
    assert 0.5 < read <= 2.5  # at most half a second past the 2 s left
    handler, seen = _scripted(httpx.Response(200, json=DONE))
    await _wait(handler, within_s=300)
    assert seen[0].extensions["timeout"]["read"] == 65.0


async def test_asks_again_until_the_job_is_terminal() -> None:
    queued = httpx.Response(200, json={"job_id": "j1", "status": "queued"})
    handler, seen = _scripted(queued, queued, httpx.Response(200, json=DONE))
    job = await _wait(handler)
    assert job.status is JobStatus.SUCCEEDED
    assert len(seen) == 3


async def test_a_job_not_ingested_yet_is_asked_for_again() -> None:
    missing = httpx.Response(404, json={"error": {"code": "job_not_found", "message": "no job"}})
    handler, seen = _scripted(missing, missing, httpx.Response(200, json=DONE))
    job = await _wait(handler)
    assert job.status is JobStatus.SUCCEEDED
    assert len(seen) == 3


async def test_unauthorized_is_raised_at_once() -> None:
    refused = httpx.Response(
        401,
        json={"error": {"code": "unauthorized", "message": "unknown API key"}},
        headers={"WWW-Authenticate": "Bearer"},
    )
    handler, seen = _scripted(refused)
    with pytest.raises(Unauthorized) as caught:
        await _wait(handler, api_key="iq_wrong")
    assert str(caught.value) == "the results API refused the key: unknown API key"
    assert caught.value.status == 401
    assert caught.value.code is ErrorCode.UNAUTHORIZED
    assert isinstance(caught.value, PermanentError)
    assert len(seen) == 1


async def test_another_client_error_is_raised_at_once() -> None:
    handler, seen = _scripted(httpx.Response(422, text="bad wait"))
    with pytest.raises(ApiRefused) as caught:
        await _wait(handler)
    assert str(caught.value) == "the results API answered 422: bad wait"
    assert caught.value.status == 422
    assert len(seen) == 1


async def test_server_errors_are_retried_then_time_out_with_the_cause() -> None:
    handler, _ = _scripted(httpx.Response(503, json={"error": {"code": "x", "message": "y"}}))
    with pytest.raises(JobTimeout) as caught:
        await _wait(handler, within_s=0.3)
    assert str(caught.value) == "job 'j1' not terminal within 0.3 s (never read)"
    assert caught.value.last is None
    cause = caught.value.__cause__
    assert isinstance(cause, httpx.HTTPStatusError)
    assert cause.response.status_code == 503
    assert str(cause) == "the results API answered 503: y"


async def test_an_unreachable_api_times_out_with_the_connect_error() -> None:
    settings = ProducerSettings(api_url=f"http://127.0.0.1:{free_port()}")
    async with httpx.AsyncClient() as http:
        with pytest.raises(JobTimeout) as caught:
            await wait_async(http, settings, "j1", 0.3)
    assert caught.value.last is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_a_job_seen_once_times_out_with_its_state_not_as_unknown() -> None:
    """A 404 after the job was read (replicas behind a load balancer, one lagging) does not
    make a job that exists "not found"."""
    queued = httpx.Response(200, json={"job_id": "j1", "status": "queued"})
    missing = httpx.Response(404, json={"error": {"code": "job_not_found", "message": "no job"}})
    handler, seen = _scripted(queued, missing)
    with pytest.raises(JobTimeout) as caught:
        await _wait(handler, within_s=0.3)
    assert str(caught.value) == "job 'j1' not terminal within 0.3 s (still queued)"
    assert caught.value.last is not None
    assert isinstance(caught.value.__cause__, JobNotFound)
    assert len(seen) >= 2


def _queued(retry_after: str | None = None) -> httpx.Response:
    """The job, queued; with a `Retry-After` (UTF-8, to send one that is not ASCII)."""
    headers = [] if retry_after is None else [(b"Retry-After", retry_after.encode())]
    return httpx.Response(200, json={"job_id": "j1", "status": "queued"}, headers=headers)


def test_a_job_not_terminal_is_asked_for_again_at_once() -> None:
    """A long-poll whose wait ran out: the next one starts at once."""
    poll = _Poll(ProducerSettings(api_url=API), "j1", 30.0)
    assert poll.answered(_queued()) == 0.0


def test_an_api_stopping_is_asked_again_after_its_retry_after() -> None:
    """An API that stops answers every long-poll at once, with `Retry-After: 1`: asking
    again at once would spin until it is gone."""
    poll = _Poll(ProducerSettings(api_url=API), "j1", 30.0)
    assert poll.answered(_queued("1")) == 1.0
    assert poll.answered(_queued(" 2 ")) == 2.0
    assert poll.answered(_queued("0")) == 0.0


def test_a_retry_after_never_pauses_past_the_deadline() -> None:
    expired = _Poll(ProducerSettings(api_url=API), "j1", 0.0)
    assert expired.answered(_queued("5")) == 0.0
    poll = _Poll(ProducerSettings(api_url=API), "j1", 3600.0)
    pause = poll.answered(_queued("86400"))
    assert isinstance(pause, float)
    assert 3000.0 < pause <= 3600.0


@pytest.mark.parametrize(
    "value", ["", "soon", "1.5", "-1", "1e3", "²", "Wed, 21 Oct 2015 07:28:00 GMT"]
)
def test_a_retry_after_not_in_delta_seconds_is_ignored(value: str) -> None:
    poll = _Poll(ProducerSettings(api_url=API), "j1", 30.0)
    assert poll.answered(_queued(value)) == 0.0


async def test_wait_asks_a_stopping_api_again_only_after_its_retry_after() -> None:
    """Its `Retry-After` outlasts the timeout: one request, then the timeout, not a spin."""
    handler, seen = _scripted(_queued("60"))
    with pytest.raises(JobTimeout) as caught:
        await _wait(handler, within_s=0.3)
    assert str(caught.value) == "job 'j1' not terminal within 0.3 s (still queued)"
    assert len(seen) == 1
