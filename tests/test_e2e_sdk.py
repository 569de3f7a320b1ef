"""Submit through the SDK, run on a worker, read the result through the API: real broker."""

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest

import producer.aio
import producer.client
import results_api.services
import worker.main
from inferq.demo_models import dataset
from producer import AsyncClient, Client, ProducerSettings
from results_api.settings import ApiSettings
from tests.support import (
    body,
    output,
    read_all,
    run_onnx,
    running_api,
    running_worker,
    wait_terminal,
)
from worker import WorkerSettings


async def test_async_client_breast_cancer_matches_onnx(
    api: httpx.AsyncClient, producer_settings: ProducerSettings, model_repo: Path
) -> None:
    features, _ = dataset("breast_cancer")
    rows = features[:6]
    async with AsyncClient(settings=producer_settings) as client:
        ids = [await client.submit("breast_cancer", {"input": rows[i : i + 1]}) for i in range(6)]
        await client.flush()

    label, probabilities = run_onnx(model_repo, "breast_cancer", rows)
    for i, job_id in enumerate(ids):
        job = await wait_terminal(api, job_id)
        assert job["status"] == "succeeded"
        assert job["model"] == "breast_cancer"
        assert job["model_version"] == "1"
        assert output(job, "label").tolist() == [label[i]]
        np.testing.assert_allclose(
            output(job, "probabilities"), probabilities[i : i + 1], atol=1e-5
        )


async def test_sync_client_diabetes_with_own_job_id_is_clamped(
    api: httpx.AsyncClient, producer_settings: ProducerSettings, model_repo: Path
) -> None:
    features, _ = dataset("diabetes")
    # Row 0 as given predicts a positive value; scaled by -20 the raw model predicts a
    # negative one (about -915), which the worker's post-processing clamps to 0.
    rows = np.stack([features[0], features[0] * -20]).astype(np.float32)
    raw = run_onnx(model_repo, "diabetes", rows)[0]
    assert raw[0, 0] > 0 > raw[1, 0]

    with Client(settings=producer_settings) as client:
        first = client.submit(
            "diabetes", {"input": rows[:1]}, job_id="order-1234", metadata={"customer": "c-9"}
        )
        second = client.submit("diabetes", {"input": rows[1:]})
        client.flush()
    assert first == "order-1234"

    job = await wait_terminal(api, "order-1234")
    assert job["status"] == "succeeded"
    assert job["metadata"] == {"customer": "c-9"}
    np.testing.assert_allclose(output(job, "variable"), raw[:1], atol=1e-5)
    clamped = await wait_terminal(api, second)
    assert output(clamped, "variable").tolist() == [[0.0]]


async def test_sdk_job_is_visible_right_after_flush(
    api: httpx.AsyncClient, producer_settings: ProducerSettings
) -> None:
    features, _ = dataset("breast_cancer")
    with Client(settings=producer_settings) as client:
        job_id = client.submit("breast_cancer", {"input": features[:1]})
        client.flush()
    response = await api.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json()["status"] in {"queued", "running", "succeeded"}


async def test_without_queued_events_a_job_is_unknown_until_a_worker_ran_it(
    api_settings: ApiSettings, worker_settings: WorkerSettings, producer_settings: ProducerSettings
) -> None:
    features, _ = dataset("breast_cancer")
    quiet = producer_settings.model_copy(update={"queued_events": False})
    async with running_api(api_settings) as api:  # no worker yet: the jobs wait in Kafka
        async with AsyncClient(settings=quiet) as client:
            unannounced = await client.submit("breast_cancer", {"input": features[:1]})
            await client.flush()
        with Client(settings=producer_settings) as sync_client:
            announced = sync_client.submit("breast_cancer", {"input": features[:1]})
            sync_client.flush()
        assert (await api.get(f"/v1/jobs/{announced}")).json()["status"] == "queued"
        unknown = await api.get(f"/v1/jobs/{unannounced}")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "job_not_found"

        async with running_worker(worker_settings):
            assert (await wait_terminal(api, unannounced))["status"] == "succeeded"
            assert (await wait_terminal(api, announced))["status"] == "succeeded"

    events = await read_all(api_settings.bootstrap_servers, api_settings.topics.results, 3)
    assert Counter(key.decode() for _, key in events) == {unannounced: 1, announced: 2}


def spy(monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str) -> list[dict[str, Any]]:
    """Replace the producer class `name` in `module` by one that notes its keyword arguments."""
    made: list[dict[str, Any]] = []
    real: Callable[..., Any] = getattr(module, name)

    def make(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, make)
    return made


async def test_every_producer_batches_by_the_setting_and_larger_records_still_travel(
    api_settings: ApiSettings,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 1 KiB batches, both SDK clients, the API and the worker make their producers
    with that limit, and send records of several KiB in batches of their own."""
    made = {
        "async": spy(monkeypatch, producer.aio, "AIOKafkaProducer"),
        "sync": spy(monkeypatch, producer.client, "KafkaProducer"),
        "worker": spy(monkeypatch, worker.main, "AIOKafkaProducer"),
        "api": spy(monkeypatch, results_api.services, "AIOKafkaProducer"),
    }
    small = {"producer_batch_bytes": 1024}
    features, _ = dataset("breast_cancer")
    rows = features[:40]  # a request of ~6.5 KiB, a result of ~1.1 KiB
    label, probabilities = run_onnx(Path(worker_settings.model_repository), "breast_cancer", rows)
    async with (
        running_api(api_settings.model_copy(update=small)) as api,
        running_worker(worker_settings.model_copy(update=small)),
    ):
        async with AsyncClient(settings=producer_settings.model_copy(update=small)) as client:
            ids = [await client.submit("breast_cancer", {"input": rows})]
            await client.flush()
        with Client(settings=producer_settings.model_copy(update=small)) as sync_client:
            ids.append(sync_client.submit("breast_cancer", {"input": rows}))
            sync_client.flush()
        submitted = await api.post("/v1/jobs", json=body("breast_cancer", rows))
        assert submitted.status_code == 202
        ids.append(submitted.json()["job_id"])

        for job_id in ids:
            job = await wait_terminal(api, job_id)
            assert job["status"] == "succeeded"
            assert output(job, "label").tolist() == label.tolist()
            np.testing.assert_allclose(output(job, "probabilities"), probabilities, atol=1e-5)

    batch_size = {"async": "max_batch_size", "sync": "batch_size"}
    for part, kwargs in made.items():
        key = batch_size.get(part, "max_batch_size")
        assert [k[key] for k in kwargs] == [1024], part
