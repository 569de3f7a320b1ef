"""HTTP bodies of the results API."""

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from results_api.webhooks.deliveries import Delivery, DeliveryState
from results_api.webhooks.schedule import iso
from schemas import Callback, ErrorInfo, JobEvent, JobStatus, Tensor, Timings
from schemas.catalog import ServedModel
from schemas.jsonvalues import JsonObject
from schemas.messages import JOB_ID_PATTERN, MAX_INPUTS, MODEL_NAME_PATTERN, VERSION_PATTERN


class SubmitJob(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model": "diabetes",
                    "inputs": [
                        {
                            "name": "input",
                            "datatype": "FP32",
                            "shape": [1, 10],
                            "data": [0.04, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02],
                        }
                    ],
                    "metadata": {"customer": "42"},
                },
                {
                    "model": "diabetes",
                    "job_id": "order-1234",
                    "inputs": [
                        {
                            "name": "input",
                            "datatype": "FP32",
                            "shape": [1, 10],
                            "raw": "CtcjPc3MTD2PwnU9CtejPArXI72PwvW8CtcjvQAAAAAK16M8CtejvA==",
                        }
                    ],
                    "deadline": "2026-11-21T10:05:00Z",
                    "callback": {
                        "url": "https://app.example.com/inferq-hook",
                        "events": ["completed", "running"],
                    },
                },
            ]
        },
    )

    model: str = Field(pattern=MODEL_NAME_PATTERN)
    inputs: list[Tensor] = Field(min_length=1, max_length=MAX_INPUTS)
    job_id: str | None = Field(
        default=None,
        pattern=JOB_ID_PATTERN,
        description="your id for the job, also its idempotency key; generated when absent",
    )
    model_version: str | None = Field(default=None, pattern=VERSION_PATTERN)
    parameters: JsonObject = Field(default_factory=dict)
    callback: Callback | None = None
    deadline: AwareDatetime | None = Field(default=None, description="RFC 3339 with a zone")
    metadata: JsonObject = Field(default_factory=dict, description="echoed in the result")


_WEBHOOK_EXAMPLE: dict[str, Any] = {
    "id": "msg_9f1c0e6a2b7d4c1e.completed",
    "event": "completed",
    "url": "https://app.example.com/inferq-hook",
    "state": "delivered",
    "attempts": 2,
    "last_status": 200,
    "delivered_at": "2026-11-21T10:00:05.120000Z",
}


class WebhookView(BaseModel):
    """Where the delivery of one callback event stands."""

    model_config = ConfigDict(json_schema_extra={"examples": [_WEBHOOK_EXAMPLE]})

    id: str = Field(description="the `webhook-id` header, the same on every try")
    event: str = Field(description="`completed` or `running`")
    url: str
    state: DeliveryState
    attempts: int
    last_status: int | None = Field(default=None, description="HTTP status of the last try")
    last_error: str | None = None
    next_try_at: datetime | None = None
    delivered_at: datetime | None = None

    @classmethod
    def of(cls, delivery: Delivery) -> "WebhookView":
        return cls(
            id=delivery.id,
            event=delivery.event,
            url=delivery.url,
            state=delivery.state,
            attempts=delivery.attempts,
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            next_try_at=iso(delivery.next_try_at),
            delivered_at=iso(delivery.delivered_at),
        )


class JobAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"job_id": "9f1c0e6a2b7d4c1e", "status": "queued"}]}
    )

    job_id: str
    status: JobStatus


class JobView(BaseModel):
    """A job as the store knows it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "9f1c0e6a2b7d4c1e",
                    "status": "succeeded",
                    "model": "breast_cancer",
                    "model_version": "1",
                    "outputs": [
                        {"name": "label", "datatype": "INT64", "shape": [1], "data": [1]},
                        {
                            "name": "probabilities",
                            "datatype": "FP32",
                            "shape": [1, 2],
                            "data": [0.03, 0.97],
                        },
                    ],
                    "timings": {
                        "queued_ms": 4.2,
                        "batch_wait_ms": 1.1,
                        "inference_ms": 0.3,
                        "batch_size": 12,
                    },
                    "worker": "worker-a1b2",
                    "submitted_at": "2026-11-21T10:00:00.000000Z",
                    "completed_at": "2026-11-21T10:00:00.004900Z",
                    "metadata": {"customer": "42"},
                    "callback": {
                        "url": "https://app.example.com/inferq-hook",
                        "events": ["completed"],
                    },
                    "webhooks": [_WEBHOOK_EXAMPLE],
                },
                {
                    "job_id": "77aa",
                    "status": "expired",
                    "model": "breast_cancer",
                    "model_version": "1",
                    "error": {
                        "code": "deadline_exceeded",
                        "message": "the deadline 2026-11-21T10:00:00+00:00 passed before the "
                        "job could run",
                    },
                    "metadata": {},
                },
            ]
        }
    )

    job_id: str
    status: JobStatus
    model: str | None = None
    model_version: str | None = None
    outputs: list[Tensor] | None = None
    error: ErrorInfo | None = None
    timings: Timings | None = None
    worker: str | None = None
    submitted_at: datetime | None = None
    completed_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    callback: Callback | None = None
    webhooks: list[WebhookView] | None = Field(
        default=None, description="deliveries of the job's callback, when it has one"
    )

    @classmethod
    def of(cls, event: JobEvent, deliveries: list[Delivery] | None = None) -> "JobView":
        view = cls.model_validate(event.model_dump(exclude={"schema_version", "tenant"}))
        if deliveries:
            view.webhooks = [WebhookView.of(d) for d in deliveries]
        return view


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ready"}]})

    status: str


_MODEL_EXAMPLE: dict[str, Any] = {
    "name": "breast_cancer",
    "versions": ["1"],
    "default_version": "1",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ],
    "max_batch_size": 256,
    "workers": ["worker-a1b2"],
}


class ModelEntry(ServedModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_MODEL_EXAMPLE]})

    workers: list[str] = Field(description="workers that announced it recently")


class ModelList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"models": [_MODEL_EXAMPLE]}]})

    models: list[ModelEntry]
