"""HTTP bodies of the results API."""

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas import Callback, ErrorInfo, JobEvent, JobStatus, Tensor, Timings
from schemas.catalog import ServedModel
from schemas.jsonvalues import JsonObject
from schemas.messages import JOB_ID_PATTERN, MODEL_NAME_PATTERN, VERSION_PATTERN


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
                }
            ]
        },
    )

    model: str = Field(pattern=MODEL_NAME_PATTERN)
    inputs: list[Tensor] = Field(min_length=1, max_length=64)
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


class JobAccepted(BaseModel):
    job_id: str
    status: JobStatus


class JobView(BaseModel):
    """A job as the store knows it."""

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

    @classmethod
    def of(cls, event: JobEvent) -> "JobView":
        return cls.model_validate(event.model_dump(exclude={"schema_version"}))


class Health(BaseModel):
    status: str


class ModelEntry(ServedModel):
    workers: list[str] = Field(description="workers that announced it recently")


class ModelList(BaseModel):
    models: list[ModelEntry]
