"""GET /v1/models and new model versions picked up without a restart."""

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferq.demo_models import dataset
from producer import AsyncClient, ProducerSettings
from results_api.directory import ModelDirectory
from results_api.settings import ApiSettings
from schemas import utcnow
from schemas.catalog import Announcement, ServedModel
from tests.support import eventually, running_api, running_worker, wait_terminal
from worker import Worker, WorkerSettings


async def served(http: httpx.AsyncClient) -> dict[str, Any]:
    return {m["name"]: m for m in (await http.get("/v1/models")).json()["models"]}


async def test_models_lists_what_workers_serve(api: httpx.AsyncClient, worker: Worker) -> None:
    async def both() -> dict[str, Any] | None:
        models = await served(api)
        return models if {"breast_cancer", "diabetes"} <= set(models) else None

    models = await eventually(both)
    assert models["breast_cancer"] == {
        "name": "breast_cancer",
        "versions": ["1"],
        "default_version": "1",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
        "max_batch_size": worker.settings.max_batch_size,
        "workers": [worker.settings.worker_name],
    }
    assert models["diabetes"]["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 10]}
    ]


async def test_a_new_version_is_served_without_restart(
    tmp_path: Path,
    model_repo: Path,
    worker_settings: WorkerSettings,
    api_settings: ApiSettings,
    producer_settings: ProducerSettings,
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(model_repo / "diabetes", repo / "diabetes")
    settings = worker_settings.model_copy(update={"model_repository": repo})
    features, _ = dataset("diabetes")
    async with running_worker(settings), running_api(api_settings) as api:
        shutil.copytree(repo / "diabetes" / "1", repo / "diabetes" / "2")

        async def two_versions() -> list[str] | None:
            versions: list[str] = (await served(api)).get("diabetes", {}).get("versions", [])
            return versions if versions == ["1", "2"] else None

        await eventually(two_versions)
        async with AsyncClient(settings=producer_settings) as client:
            latest = await client.submit("diabetes", {"input": features[:1]})
            pinned = await client.submit("diabetes", {"input": features[:1]}, model_version="1")
        assert (await wait_terminal(api, latest))["model_version"] == "2"
        assert (await wait_terminal(api, pinned))["model_version"] == "1"


def test_unreadable_announcements_are_skipped_and_the_rest_still_listed(
    api_settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    directory = ModelDirectory(api_settings)
    good = Announcement(worker="w1", models=[], announced_at=utcnow(), interval_s=5)
    directory._note(good.model_dump_json().encode())
    served = ServedModel(
        name="m", versions=["1"], default_version="1", inputs=[], outputs=[], max_batch_size=8
    )
    fresh = good.model_dump(mode="json") | {"worker": "w2", "models": [served.model_dump()]}
    naive = fresh | {"announced_at": "2026-11-21T10:00:00"}
    endless = fresh | {"interval_s": 1e300}
    with caplog.at_level("ERROR", logger="results_api.directory"):
        for bad in (naive, endless):
            directory._note(json.dumps(bad).encode())
    assert len(caplog.records) == 2
    assert all(
        "skipping an unreadable model announcement" in r.getMessage() for r in caplog.records
    )
    assert directory.served() == []  # w1 serves nothing; neither bad w2 counts
    directory._note(json.dumps(fresh).encode())
    assert directory.served() == [(served, ["w2"])]
