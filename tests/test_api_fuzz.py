"""Fuzz every operation of the results API's OpenAPI document against the running app.

Schemathesis generates requests from the document, in both of its modes: `positive`
(bodies, paths, queries and headers that fit the document) and `negative` (ones that do
not). The real API answers them over HTTP, with a worker and a real broker behind it.
No generated request may get a 5xx: bad input is the client's error, never the server's.

The app runs on this test's event loop: hypothesis draws each case while the loop is
idle, and the synchronous HTTP call runs in a thread while the loop serves it.
"""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation

from inferq.devbroker import DevBroker
from results_api.app import create_app
from results_api.settings import ApiSettings
from tests.support import GROUP_TIMEOUTS, running_api, running_worker, unique_prefix
from worker import WorkerSettings

EXAMPLES_PER_OPERATION = 50

Operation = APIOperation[Any, Any, Any, Any]


def _operations() -> list[Operation]:
    """The document's operations; one that schemathesis cannot read fails the collection."""
    schema = schemathesis.openapi.from_dict(create_app(ApiSettings()).openapi())
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


OPERATIONS = _operations()


def _negatable(operation: Operation) -> bool:
    """Whether a request can break the document: a path string takes any value, so an
    operation with nothing else to fill in has no negative cases."""
    return any(len(part) for part in (operation.query, operation.headers, operation.body))


# Every operation with inputs that fit the document, and those that can, with inputs that do not.
FUZZED = [
    pytest.param(operation, mode, id=f"{operation.label} {mode.value}")
    for operation in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or _negatable(operation)
]


@pytest.fixture(scope="module")
async def fuzzed_api(
    broker: DevBroker, model_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a worker serving the demo models, shared by every fuzzed operation."""
    prefix = unique_prefix()
    common = {
        "bootstrap_servers": broker.bootstrap_servers,
        "topic_prefix": prefix,
        "request_partitions": 2,
        "results_partitions": 2,
        **GROUP_TIMEOUTS,
    }
    worker = WorkerSettings(**common, model_repository=model_repo, refresh_interval_s=0.5)
    store = tmp_path_factory.mktemp("fuzz") / "results.db"
    # Almost every generated job id is unknown: answer those 404s without first waiting
    # for ingestion to catch up, which would make up most of the run.
    api = ApiSettings(**common, store=f"sqlite:///{store}", not_found_wait_ms=0)
    async with running_worker(worker), running_api(api) as http:
        yield http


def test_the_documented_operations_are_fuzzed() -> None:
    assert {op.label for op in OPERATIONS} >= {
        "POST /v1/jobs",
        "GET /v1/jobs/{job_id}",
        "GET /v1/models",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    }


@pytest.mark.parametrize(("operation", "mode"), FUZZED)
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None)
@given(data=st.data())
async def test_no_request_gets_a_server_error(
    fuzzed_api: httpx.AsyncClient,
    operation: Operation,
    mode: GenerationMode,
    data: st.DataObject,
) -> None:
    case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
    response = await asyncio.to_thread(case.call, base_url=str(fuzzed_api.base_url))
    case.validate_response(response, checks=[not_a_server_error])


def _job(tensor: str, extra: str = "") -> bytes:
    """A body for a served model, as raw JSON: some of these cannot be written by json.dumps."""
    return f'{{"model": "diabetes", "inputs": [{tensor}]{extra}}}'.encode()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HUGE = 2**62  # HUGE * HUGE * 4 wraps around to 0 in int64
BIG = "9" * 4000  # JSON parses it; Python will not write the product of two as text

# Requests that once got a 500, or were accepted and then broke the job: each must be refused.
HOSTILE = [
    pytest.param(
        _job(f'{{"name": "input", "datatype": "FP32", "shape": [{HUGE}, {HUGE}, 4], "raw": ""}}'),
        "invalid_input",
        id="shape-whose-int64-product-wraps-raw",
    ),
    pytest.param(
        _job(f'{{"name": "input", "datatype": "FP32", "shape": [{HUGE}, {HUGE}, 4], "data": []}}'),
        "invalid_input",
        id="shape-whose-int64-product-wraps-data",
    ),
    pytest.param(
        _job(f'{{"name": "input", "datatype": "FP32", "shape": [{10**30}], "data": [1.0]}}'),
        "invalid_input",
        id="dimension-beyond-int64",
    ),
    pytest.param(
        _job(f'{{"name": "input", "datatype": "FP32", "shape": [{BIG}, {BIG}], "data": [1.0]}}'),
        "invalid_input",
        id="element-count-too-long-to-print",
    ),
    pytest.param(
        _job(
            f'{{"name": "input", "datatype": "FP32", "shape": [{", ".join([BIG] * 17)}], '
            '"data": [1.0]}'
        ),
        "invalid_request",
        id="too-many-dimensions-too-long-to-print",
    ),
    pytest.param(
        _job('{"name": "input", "datatype": "FP32", "shape": [1], "data": [1e300]}'),
        "invalid_input",
        id="fp32-overflow",
    ),
    pytest.param(
        _job('{"name": "input", "datatype": "FP16", "shape": [1], "data": [70000]}'),
        "invalid_input",
        id="fp16-overflow",
    ),
    pytest.param(
        _job('{"name": "input", "datatype": "BYTES", "shape": [1], "data": ["\\ud800"]}'),
        "invalid_input",
        id="bytes-lone-surrogate",
    ),
    pytest.param(
        _job(
            '{"name": "input", "datatype": "FP32", "shape": [1], "data": [1.0]}',
            ', "metadata": {"note": "\\ud800"}',
        ),
        "invalid_request",
        id="metadata-lone-surrogate",
    ),
    pytest.param(
        _job(
            '{"name": "input", "datatype": "FP32", "shape": [1], "data": [1.0]}',
            ', "parameters": {"\\udc00": 1}',
        ),
        "invalid_request",
        id="parameters-key-lone-surrogate",
    ),
    pytest.param(
        _job(
            '{"name": "input", "datatype": "FP32", "shape": [1], "data": [1.0]}',
            f', "metadata": {{"deep": {_nested(220)}}}',
        ),
        "invalid_request",
        id="metadata-too-deep-to-read-back",
    ),
    pytest.param(
        _job(
            '{"name": "input", "datatype": "FP32", "shape": [1], "data": [1.0]}',
            f', "metadata": {{"deep": {_nested(300)}}}',
        ),
        "invalid_request",
        id="metadata-too-deep-to-write",
    ),
]


@pytest.mark.parametrize(("body", "code"), HOSTILE)
async def test_hostile_bodies_are_refused(
    fuzzed_api: httpx.AsyncClient, body: bytes, code: str
) -> None:
    response = await fuzzed_api.post(
        "/v1/jobs", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
