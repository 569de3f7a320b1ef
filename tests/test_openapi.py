"""The OpenAPI document at /docs: every endpoint described, every model and error with
examples, one error shape everywhere."""

from typing import Any

import pytest

from results_api.app import create_app
from results_api.models import SubmitJob
from results_api.settings import ApiSettings

ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document: dict[str, Any] = create_app(ApiSettings()).openapi()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def test_every_endpoint_has_a_summary_and_a_description(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    assert len(ops) == 8
    for method, path, op in ops:
        assert op.get("summary"), (method, path)
        assert op.get("description"), (method, path)


def test_every_error_answer_has_the_one_shape_and_examples(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            if status.startswith("2"):
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": ERROR_REF}, (method, path, status)
            examples = content["examples"].values()
            assert examples, (method, path, status)
            for example in examples:
                assert set(example["value"]["error"]) == {"code", "message"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_every_model_has_examples(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    objects = {name: s for name, s in schemas.items() if s.get("type") == "object"}
    assert {"SubmitJob", "JobView", "JobAccepted", "ErrorResponse", "WebhookView"} <= set(objects)
    for name, schema in objects.items():
        assert schema.get("examples"), name


def test_the_submit_examples_are_valid_requests(spec: dict[str, Any]) -> None:
    for example in spec["components"]["schemas"]["SubmitJob"]["examples"]:
        SubmitJob.model_validate(example)


def test_bearer_keys_are_documented(spec: dict[str, Any]) -> None:
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    secured = {f"{m} {p}" for m, p, op in operations(spec) if op.get("security")}
    assert secured == {
        "POST /v1/jobs",
        "GET /v1/jobs/{job_id}",
        "POST /v1/jobs/{job_id}/cancel",
        "POST /v1/jobs/{job_id}/webhook/retry",
        "GET /v1/models",
    }
