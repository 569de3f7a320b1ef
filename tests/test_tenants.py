"""API keys and tenants over HTTP: 401 without a key, a tenant sees only its own jobs."""

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from inferq.demo_models import dataset
from producer import AsyncClient, ProducerSettings
from results_api.auth import hash_key
from results_api.settings import ApiSettings
from tests.support import running_api
from tests.test_lifecycle import MODEL, body
from worker import Worker

KEY_A, KEY_A2, KEY_B = "iq_key-of-tenant-a", "iq_rotated-key-of-a", "iq_key-of-tenant-b"
A = {"Authorization": f"Bearer {KEY_A}"}
A2 = {"Authorization": f"bearer {KEY_A2}"}
B = {"Authorization": f"Bearer {KEY_B}"}


@pytest.fixture
async def keyed(api_settings: ApiSettings, worker: Worker) -> AsyncIterator[httpx.AsyncClient]:
    entries = f"a:{hash_key(KEY_A)}, a:{hash_key(KEY_A2)},b:{hash_key(KEY_B)}"
    async with running_api(api_settings.model_copy(update={"api_keys": entries})) as http:
        yield http


async def test_requests_without_a_valid_key_are_401(keyed: httpx.AsyncClient) -> None:
    cases = [
        ({}, "missing bearer key"),
        ({"Authorization": "Basic YTpi"}, "expected Authorization: Bearer <key>"),
        ({"Authorization": "Bearer iq_not-a-key"}, "unknown API key"),
    ]
    for headers, message in cases:
        for method, path in [("POST", "/v1/jobs"), ("GET", "/v1/jobs/x"), ("GET", "/v1/models")]:
            response = await keyed.request(method, path, headers=headers, json=body())
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json() == {"error": {"code": "unauthorized", "message": message}}
    for open_path in ["/healthz", "/readyz", "/metrics", "/openapi.json"]:
        assert (await keyed.get(open_path)).status_code == 200, open_path


async def test_a_tenant_sees_only_its_own_jobs(keyed: httpx.AsyncClient) -> None:
    submitted = await keyed.post("/v1/jobs", json={**body(), "job_id": "job-of-a"}, headers=A)
    assert submitted.status_code == 202
    assert await _terminal(keyed, "job-of-a", A) == "succeeded"
    assert (await keyed.get("/v1/jobs/job-of-a", headers=A2)).json()["status"] == "succeeded"

    unknown = (await keyed.get("/v1/jobs/no-such-job", headers=B)).json()
    for method, path in [
        ("GET", "/v1/jobs/job-of-a"),
        ("POST", "/v1/jobs/job-of-a/cancel"),
        ("POST", "/v1/jobs/job-of-a/webhook/retry"),
    ]:
        response = await keyed.request(method, path, headers=B)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "job_not_found"
    assert unknown["error"]["message"] == "no job with id 'no-such-job'"

    taken = await keyed.post("/v1/jobs", json={**body(), "job_id": "job-of-a"}, headers=B)
    assert taken.status_code == 409
    assert taken.json()["error"] == {
        "code": "job_id_taken",
        "message": "job id 'job-of-a' is taken: choose another",
    }
    again = await keyed.post("/v1/jobs", json={**body(), "job_id": "job-of-a"}, headers=A)
    assert (again.status_code, again.json()["status"]) == (202, "succeeded")


async def inferq_get(job_id: str, api: str, key: str | None) -> tuple[int, dict[str, Any]]:
    """`inferq get JOB_ID` with INFERQ_API_URL and INFERQ_API_KEY: its exit code and JSON."""
    env = {**os.environ, "INFERQ_API_URL": api}
    env.pop("INFERQ_API_KEY", None)
    if key is not None:
        env["INFERQ_API_KEY"] = key
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inferq", "get", job_id, env=env, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, _ = await command.communicate()
    assert command.returncode is not None
    answer: dict[str, Any] = json.loads(out)
    return command.returncode, answer


async def test_inferq_get_sends_the_configured_key(keyed: httpx.AsyncClient) -> None:
    submitted = await keyed.post("/v1/jobs", json={**body(), "job_id": "cli-of-a"}, headers=A)
    assert submitted.status_code == 202
    assert await _terminal(keyed, "cli-of-a", A) == "succeeded"
    api = str(keyed.base_url)

    code, job = await inferq_get("cli-of-a", api, KEY_A)
    assert (code, job["status"]) == (0, "succeeded")
    code, answer = await inferq_get("cli-of-a", api, KEY_B)  # another tenant's: unknown
    assert (code, answer["error"]["code"]) == (1, "job_not_found")
    code, answer = await inferq_get("cli-of-a", api, None)
    assert (code, answer["error"]) == (2, {"code": "unauthorized", "message": "missing bearer key"})


async def test_sdk_jobs_belong_to_the_configured_tenant(
    keyed: httpx.AsyncClient, producer_settings: ProducerSettings
) -> None:
    features = {"input": dataset(MODEL)[0][:1]}
    settings = producer_settings.model_copy(update={"tenant": "b"})
    async with AsyncClient(settings=settings) as client:
        of_b = await client.submit(MODEL, features, job_id="sdk-job-of-b")
    async with AsyncClient(settings=producer_settings) as client:
        nobody = await client.submit(MODEL, features, job_id="sdk-job-of-nobody")
    assert await _terminal(keyed, of_b, B) == "succeeded"
    assert (await keyed.get(f"/v1/jobs/{of_b}", headers=A)).status_code == 404
    for headers in (A, B):
        assert (await keyed.get(f"/v1/jobs/{nobody}", headers=headers)).status_code == 404


async def _terminal(http: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> str:
    """The job's terminal status, read with a tenant's key (long-polls until it ends)."""
    response = await http.get(f"/v1/jobs/{job_id}?wait=30", headers=headers, timeout=40)
    status: str = response.json()["status"]
    return status
