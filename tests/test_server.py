"""How the results API is served: uvicorn's settings come from ApiSettings."""

import pytest
from fastapi import FastAPI

from results_api.server import uvicorn_config
from results_api.settings import ApiSettings


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
