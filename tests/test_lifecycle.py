"""Deadlines, cancellation, and admission limits (413, 429), over the real broker."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from inferq.admin import ensure_topics
from inferq.demo_models import dataset
from producer import AsyncClient, PayloadTooLarge, ProducerSettings
from results_api.settings import ApiSettings
from schemas import Tensor
from tests.support import eventually, running_api, running_worker, wait_terminal
from worker import Worker, WorkerSettings

MODEL = "breast_cancer"


def body(rows: int = 1) -> dict[str, Any]:
    features, _ = dataset(MODEL)
    return {"model": MODEL, "inputs": [Tensor.from_numpy("input", features[:rows]).model_dump()]}


async def model_topic(settings: ApiSettings) -> None:
    """The request topic a worker would create, so the API takes jobs with no worker up."""
    await ensure_topics(settings, {settings.topics.requests(MODEL): settings.request_partitions})


async def _skipped(worker: Worker, count: int) -> bool | None:
    return True if worker.pipelines[0].stats.cancelled == count else None


async def test_job_past_its_deadline_ends_expired_and_others_run(
    worker: Worker, producer_settings: ProducerSettings, api_settings: ApiSettings
) -> None:
    features, _ = dataset(MODEL)
    past = datetime.now(UTC) - timedelta(seconds=1)
    future = datetime.now(UTC) + timedelta(hours=1)
    async with AsyncClient(settings=producer_settings) as client:
        late = await client.submit(MODEL, {"input": features[:1]}, deadline=past)
        timely = await client.submit(MODEL, {"input": features[:1]}, deadline=future)
    async with running_api(api_settings) as api:
        expired = await wait_terminal(api, late)
        assert expired["status"] == "expired"
        assert expired["error"] == {
            "code": "deadline_exceeded",
            "message": f"the deadline {past.isoformat()} passed before the job could run",
        }
        assert "outputs" not in expired
        assert (await wait_terminal(api, timely))["status"] == "succeeded"


async def test_cancel_over_http_stops_a_queued_job_from_running(
    api_settings: ApiSettings, worker_settings: WorkerSettings
) -> None:
    await model_topic(api_settings)
    async with running_api(api_settings) as api:
        job_id = (await api.post("/v1/jobs", json=body())).json()["job_id"]
        cancelled = await api.post(f"/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["model"] == MODEL
        assert cancelled.json()["error"] == {
            "code": "cancelled",
            "message": "the job was cancelled on request",
        }
        # Cancelling again is answered the same way: the job is cancelled.
        again = await api.post(f"/v1/jobs/{job_id}/cancel")
        assert (again.status_code, again.json()["status"]) == (200, "cancelled")

        async with running_worker(worker_settings) as worker:
            other = (await api.post("/v1/jobs", json=body())).json()["job_id"]
            assert (await wait_terminal(api, other))["status"] == "succeeded"
            await eventually(lambda: _skipped(worker, 1))
        assert (await api.get(f"/v1/jobs/{job_id}")).json()["status"] == "cancelled"


async def test_cancelling_a_finished_job_is_409(api: httpx.AsyncClient) -> None:
    job_id = (await api.post("/v1/jobs", json=body())).json()["job_id"]
    assert (await wait_terminal(api, job_id))["status"] == "succeeded"
    response = await api.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "code": "job_finished",
            "message": f"job '{job_id}' has already ended succeeded: only a job that has not "
            "finished can be cancelled",
        }
    }
    assert (await api.get(f"/v1/jobs/{job_id}")).json()["status"] == "succeeded"


async def test_cancelling_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/jobs/nobody-knows/cancel")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


async def test_client_cancel_stops_a_queued_job_from_running(
    producer_settings: ProducerSettings,
    worker_settings: WorkerSettings,
    api_settings: ApiSettings,
) -> None:
    features, _ = dataset(MODEL)
    async with AsyncClient(settings=producer_settings) as client:
        job_id = await client.submit(MODEL, {"input": features[:1]})
        await client.cancel(job_id)
    async with running_worker(worker_settings) as worker, running_api(api_settings) as api:
        job = await wait_terminal(api, job_id)
        assert job["status"] == "cancelled"
        assert job["error"]["code"] == "cancelled"
        await eventually(lambda: _skipped(worker, 1))


async def test_body_over_the_limit_is_413_with_the_limit(api_settings: ApiSettings) -> None:
    limited = api_settings.model_copy(update={"max_request_bytes": 2048})
    await model_topic(limited)
    async with running_api(limited) as api:
        large = await api.post("/v1/jobs", json=body(rows=40))
        assert large.status_code == 413
        assert large.json()["error"]["code"] == "payload_too_large"
        assert (
            "over the limit of 2048 bytes (INFERQ_MAX_REQUEST_BYTES)"
            in (large.json()["error"]["message"])
        )

        async def chunks() -> Any:
            for _ in range(3):
                yield b" " * 1000
            yield b"{}"

        streamed = await api.post(
            "/v1/jobs", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "payload_too_large"

        small = await api.post("/v1/jobs", json=body(rows=1))
        assert small.status_code == 202


async def test_sdk_refuses_a_request_over_the_limit_before_sending(
    producer_settings: ProducerSettings,
) -> None:
    limited = producer_settings.model_copy(update={"max_request_bytes": 1024})
    rows = np.zeros((100, 30), dtype=np.float32)
    async with AsyncClient(settings=limited) as client:
        with pytest.raises(PayloadTooLarge) as refused:
            await client.submit(MODEL, {"input": rows}, job_id="too-big")
    assert "the limit is 1024 bytes (INFERQ_MAX_REQUEST_BYTES)" in str(refused.value)


async def test_backlog_over_the_limit_is_429_with_retry_after(
    api_settings: ApiSettings, producer_settings: ProducerSettings, worker_settings: WorkerSettings
) -> None:
    limited = api_settings.model_copy(update={"max_backlog": 3, "backlog_refresh_ms": 10})
    await model_topic(limited)
    features, _ = dataset(MODEL)
    async with AsyncClient(settings=producer_settings) as client:
        for _ in range(5):
            await client.submit(MODEL, {"input": features[:1]})

    async with running_api(limited) as api:

        async def refused() -> httpx.Response | None:
            response = await api.post("/v1/jobs", json=body())
            return response if response.status_code == 429 else None

        response = await eventually(refused)
        assert response.headers["retry-after"] == "1"
        error = response.json()["error"]
        assert error["code"] == "backlog_full"
        assert "over the limit of 3 (INFERQ_MAX_BACKLOG)" in error["message"]

        async with running_worker(worker_settings):

            async def accepted() -> httpx.Response | None:
                response = await api.post("/v1/jobs", json=body())
                return response if response.status_code == 202 else None

            await eventually(accepted)
