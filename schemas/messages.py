"""The two messages on the wire: an inference request and a job event (status or result)."""

import os
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field

from schemas.errors import ErrorCode, ErrorInfo
from schemas.jsonvalues import JsonObject
from schemas.status import JobStatus
from schemas.tensors import Tensor

SCHEMA_VERSION = 1

# Job ids and model names travel in Kafka keys, topic names and URLs: keep them plain.
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
VERSION_PATTERN = r"^[0-9]{1,9}$"
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_INPUTS = 64  # tensors in one request

CallbackEvent = Literal["completed", "running"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    """32 hex digits: the unix time in milliseconds (12 digits), then 80 bits of the OS's
    randomness (20), like a UUIDv7 (which has 74). Ids sort by the time they were made, so
    a store's index takes each new job near its end instead of at a random page: the SQLite
    store's writes cost half as much (`python -m bench.store`)."""
    return (time.time_ns() // 1_000_000).to_bytes(6, "big").hex() + os.urandom(10).hex()


def _completed_only() -> list[CallbackEvent]:
    return ["completed"]


class Callback(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [{"url": "https://app.example.com/inferq-hook", "events": ["completed"]}]
        },
    )

    url: AnyHttpUrl = Field(description="where the job is POSTed, signed (Standard Webhooks)")
    events: list[CallbackEvent] = Field(
        default_factory=_completed_only,
        min_length=1,
        description="`completed`: when the job ends, whatever its state; `running`: also when a "
        "worker starts it",
    )

    def wants(self, status: JobStatus) -> bool:
        return event_kind(status) in self.events


def event_kind(status: JobStatus) -> CallbackEvent | None:
    """Which callback event a job state is: `completed` for every terminal state."""
    if status.terminal:
        return "completed"
    return "running" if status is JobStatus.RUNNING else None


class InferenceRequest(BaseModel):
    """One prediction job, as it travels on `<prefix>.requests.<model>` (key = job_id)."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    job_id: str = Field(default_factory=new_job_id, pattern=JOB_ID_PATTERN)
    model: str = Field(pattern=MODEL_NAME_PATTERN)
    model_version: str | None = Field(default=None, pattern=VERSION_PATTERN)
    inputs: list[Tensor] = Field(min_length=1, max_length=MAX_INPUTS)
    parameters: JsonObject = Field(default_factory=dict)
    callback: Callback | None = None
    deadline: AwareDatetime | None = None
    submitted_at: AwareDatetime = Field(default_factory=utcnow)
    metadata: JsonObject = Field(default_factory=dict)
    tenant: str | None = Field(default=None, pattern=TENANT_PATTERN)


class Timings(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {"queued_ms": 4.2, "batch_wait_ms": 1.1, "inference_ms": 0.3, "batch_size": 12}
            ]
        },
    )

    queued_ms: float = Field(description="from submit until the worker started the batch")
    batch_wait_ms: float = Field(
        default=0.0, description="part of queued_ms spent in the batcher, waiting for a batch"
    )
    inference_ms: float = Field(description="ONNX Runtime time of the batch this job ran in")
    batch_size: int = Field(description="jobs in that batch")


class JobEvent(BaseModel):
    """A job's state at one moment, as it travels on `<prefix>.results` (key = job_id).

    A `queued` event is written at submit; a terminal event carries the outputs or
    the error. Consumers keep the most advanced state (see `schemas.status.supersedes`).
    """

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    job_id: str
    status: JobStatus
    model: str | None = None
    model_version: str | None = None
    outputs: list[Tensor] | None = None
    error: ErrorInfo | None = None
    timings: Timings | None = None
    worker: str | None = None
    submitted_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Echoed from the request by every writer, so each event says where it is called back
    # and whose it is, whatever order events arrive in.
    callback: Callback | None = None
    tenant: str | None = None

    @classmethod
    def cancelled(
        cls, job_id: str, known: "JobEvent | None" = None, tenant: str | None = None
    ) -> "JobEvent":
        """The `cancelled` event of a job, keeping what `known` (its last event) says of it."""
        return cls(
            job_id=job_id,
            status=JobStatus.CANCELLED,
            model=known.model if known else None,
            model_version=known.model_version if known else None,
            error=ErrorInfo(code=ErrorCode.CANCELLED, message="the job was cancelled on request"),
            submitted_at=known.submitted_at if known else None,
            completed_at=utcnow(),
            metadata=known.metadata if known else {},
            callback=known.callback if known else None,
            tenant=known.tenant if known else tenant,
        )

    @classmethod
    def of_request(cls, request: InferenceRequest, status: JobStatus) -> "JobEvent":
        """A job's event in a state that adds nothing to its request (queued, running)."""
        return cls(
            job_id=request.job_id,
            status=status,
            model=request.model,
            model_version=request.model_version,
            submitted_at=request.submitted_at,
            metadata=request.metadata,
            callback=request.callback,
            tenant=request.tenant,
        )

    @classmethod
    def queued(cls, request: InferenceRequest) -> "JobEvent":
        return cls.of_request(request, JobStatus.QUEUED)


class CancelRequest(BaseModel):
    """A request to cancel a job, as it travels on `<prefix>.cancels` (key = job_id)."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    job_id: str = Field(pattern=JOB_ID_PATTERN)
    requested_at: AwareDatetime = Field(default_factory=utcnow)


class EventHead(BaseModel):
    """The part of a JobEvent that orders it: read without validating outputs."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    job_id: str
    status: JobStatus
