"""How the results API is served: uvicorn's settings come from ApiSettings, and a stop
answers the long-polls in flight."""

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from inferq.admin import ensure_topics
from inferq.devbroker import free_port
from results_api.server import serve, uvicorn_config
from results_api.settings import ApiSettings
from tests.support import START_TIMEOUT_S, eventually


def test_idle_connections_outlive_the_clients_pools_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INFERQ_KEEP_ALIVE_S", raising=False)
    config = uvicorn_config(ApiSettings(), FastAPI())
    assert config.timeout_keep_alive == 75  # httpx and uvicorn default to 5 s: a race
    assert config.http == "httptools"


def test_keep_alive_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_KEEP_ALIVE_S", "120")
    settings = ApiSettings(host="0.0.0.0", port=8123, drain_timeout_s=12)
    config = uvicorn_config(settings, FastAPI())
    assert (config.timeout_keep_alive, config.host, config.port) == (120, "0.0.0.0", 8123)
    assert config.timeout_graceful_shutdown == 12
    with pytest.raises(ValueError, match="keep_alive_s"):
        ApiSettings(keep_alive_s=0)


async def test_stopping_answers_long_polls_at_once_with_what_they_have(
    api_settings: ApiSettings,
) -> None:
    """A long-poll may wait 60 s, longer than the drain (30 s): on stop it answers the job
    as it stands instead of holding the drain and then being cut off, and says when to ask
    again (`Retry-After`): a client that asked again at once would spin until it is gone."""
    topics = api_settings.topics
    await ensure_topics(api_settings, {topics.requests("m"): 1, topics.results: 2})
    settings = api_settings.model_copy(update={"port": free_port()})
    stop, ready = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(serve(settings, stop, ready))
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await ready.wait()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}") as http:
            job = {
                "model": "m",
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
            }
            job_id = (await http.post("/v1/jobs", json=job)).json()["job_id"]
            ran_out = await http.get(f"/v1/jobs/{job_id}?wait=0.1")  # not stopping: no hint
            assert ran_out.json()["status"] == "queued"
            assert "Retry-After" not in ran_out.headers
            polling = asyncio.create_task(http.get(f"/v1/jobs/{job_id}?wait=60", timeout=90))

            async def waiting() -> bool | None:
                metrics = (await http.get("/metrics")).text
                return "inferq_waiting_jobs 1" in metrics.splitlines() or None

            await eventually(waiting)
            stop.set()
            answer = await polling
        assert (answer.status_code, answer.json()["status"]) == (200, "queued")
        assert answer.headers["Retry-After"] == "1"
    finally:
        stop.set()
        await serving
