"""Submit and poll over HTTP against the real broker and a real worker."""

from collections.abc import Iterable
from pathlib import Path

import httpx
import numpy as np
import pytest

from inferq.demo_models import dataset
from results_api.sqlite_store import SQLiteStore
from results_api.store import StoreUnavailable
from schemas import JobEvent, Tensor
from tests.support import body, output, run_onnx, wait_terminal


async def test_http_submit_then_poll_matches_onnx(api: httpx.AsyncClient, model_repo: Path) -> None:
    features, _ = dataset("diabetes")
    rows = features[10:13]
    response = await api.post("/v1/jobs", json=body("diabetes", rows, metadata={"k": "v"}))
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert response.headers["location"] == f"/v1/jobs/{accepted['job_id']}"

    job = await wait_terminal(api, accepted["job_id"])
    assert job["status"] == "succeeded"
    assert job["metadata"] == {"k": "v"}
    assert job["timings"]["batch_size"] >= 1
    expected = np.maximum(run_onnx(model_repo, "diabetes", rows)[0], 0)
    np.testing.assert_allclose(output(job, "variable"), expected, atol=1e-5)


async def test_http_job_is_queued_at_once_and_job_id_is_idempotent(
    api: httpx.AsyncClient,
) -> None:
    features, _ = dataset("breast_cancer")
    first = await api.post("/v1/jobs", json=body("breast_cancer", features[:1], job_id="inv-7"))
    assert first.status_code == 202
    assert first.json() == {"job_id": "inv-7", "status": "queued"}
    seen = await api.get("/v1/jobs/inv-7")
    assert seen.status_code == 200
    assert seen.json()["status"] in {"queued", "succeeded"}

    done = await wait_terminal(api, "inv-7")
    again = await api.post("/v1/jobs", json=body("breast_cancer", features[5:6], job_id="inv-7"))
    assert again.status_code == 202
    assert again.json() == {"job_id": "inv-7", "status": "succeeded"}
    assert (await wait_terminal(api, "inv-7")) == done


async def test_unknown_job_is_404_with_error_shape(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/jobs/no-such-job")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "job_not_found", "message": "no job with id 'no-such-job'"}
    }


async def test_malformed_bodies_are_422_with_error_shape(api: httpx.AsyncClient) -> None:
    not_json = await api.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["error"]["code"] == "invalid_request"
    assert "JSON" in not_json.json()["error"]["message"]

    no_inputs = await api.post("/v1/jobs", json={"model": "diabetes"})
    assert no_inputs.status_code == 422
    assert no_inputs.json() == {
        "error": {"code": "invalid_request", "message": "body.inputs: Field required"}
    }

    bad_shape = await api.post(
        "/v1/jobs",
        json={
            "model": "diabetes",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1.0, 2.0]}],
        },
    )
    assert bad_shape.status_code == 422
    assert bad_shape.json() == {
        "error": {
            "code": "invalid_input",
            "message": "tensor 'input': shape [1, 3] needs 3 elements, data has 2",
        }
    }


async def test_unknown_model_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/jobs", json=body("nope", np.ones((1, 2), np.float32)))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "model_not_found",
        "message": "model 'nope' is not served: no worker has created its topic",
    }


async def test_health_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).json() == {"status": "ready"}
    missing = await api.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_long_poll_returns_once_the_job_is_terminal(api: httpx.AsyncClient) -> None:
    features, _ = dataset("breast_cancer")
    job_id = (await api.post("/v1/jobs", json=body("breast_cancer", features[:1]))).json()["job_id"]
    waited = await api.get(f"/v1/jobs/{job_id}", params={"wait": 30}, timeout=40)
    assert waited.status_code == 200
    assert waited.json()["status"] == "succeeded"  # back before the wait ran out

    other = (await api.post("/v1/jobs", json=body("breast_cancer", features[1:2]))).json()
    preferred = await api.get(
        f"/v1/jobs/{other['job_id']}", headers={"Prefer": "respond-async, wait=30"}, timeout=40
    )
    assert preferred.json()["status"] == "succeeded"
    assert preferred.headers["preference-applied"] == "wait=30"


async def test_long_poll_limits(api: httpx.AsyncClient) -> None:
    too_long = await api.get("/v1/jobs/x", params={"wait": 61})
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "invalid_request"
    assert too_long.json()["error"]["message"].startswith("query.wait: ")
    unknown = await api.get("/v1/jobs/unknown-job", params={"wait": 1})
    assert unknown.status_code == 404


async def test_binary_tensors_over_http(api: httpx.AsyncClient, model_repo: Path) -> None:
    features, _ = dataset("diabetes")
    tensor = Tensor.from_numpy("input", features[:2], binary=True)
    response = await api.post(
        "/v1/jobs", json={"model": "diabetes", "inputs": [tensor.model_dump(mode="json")]}
    )
    job = await wait_terminal(api, response.json()["job_id"])
    assert job["outputs"][0]["raw"]  # results mirror the request's form
    expected = np.maximum(run_onnx(model_repo, "diabetes", features[:2])[0], 0)
    np.testing.assert_allclose(output(job, "variable"), expected, atol=1e-5)


async def test_metrics_count_submissions(api: httpx.AsyncClient) -> None:
    features, _ = dataset("breast_cancer")
    await api.post("/v1/jobs", json=body("breast_cancer", features[:1]))
    text = (await api.get("/metrics")).text
    assert "inferq_jobs_submitted_total 1\n" in text
    assert "inferq_ingest_assigned 1\n" in text


async def test_a_job_the_broker_took_is_accepted_though_the_store_refused_it(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker has the job once it acknowledged it: a 503 would have the client submit
    it again (under a new id if it let the SDK choose). Ingestion stores it from its
    `queued` event on the results topic."""

    async def refused(self: SQLiteStore, events: Iterable[JobEvent]) -> None:
        raise StoreUnavailable("database is locked")

    monkeypatch.setattr(SQLiteStore, "apply", refused)
    features, _ = dataset("breast_cancer")
    accepted = await api.post("/v1/jobs", json=body("breast_cancer", features[:1]))
    assert accepted.status_code == 202
    assert (await wait_terminal(api, accepted.json()["job_id"]))["status"] == "succeeded"
