"""From a Kafka record to a runnable job, or to the failure that explains why it cannot run."""

import json
import re
from dataclasses import dataclass, field
from typing import Any

from schemas import (
    DecodeError,
    ErrorCode,
    ErrorInfo,
    InferenceRequest,
    JobEvent,
    JobStatus,
    TensorError,
    decode_request,
    utcnow,
)
from schemas.codec import Headers
from schemas.messages import JOB_ID_PATTERN, TENANT_PATTERN
from worker.repository import ModelNotFound, ModelRepository, VersionNotFound
from worker.runtime import Arrays, InputError, LoadedModel

_JOB_ID = re.compile(JOB_ID_PATTERN)
_TENANT = re.compile(TENANT_PATTERN)


@dataclass(slots=True)
class Job:
    request: InferenceRequest
    model: LoadedModel
    arrays: Arrays
    origin: tuple[Any, int] | None = None  # (partition, offset) of the record it came from
    enqueued: float | None = None  # monotonic time it entered the batcher

    @property
    def signature(self) -> tuple[Any, ...]:
        """Jobs with equal signatures can share one batch."""
        return (
            self.model.name,
            self.model.version,
            tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(self.arrays.items())),
        )

    @property
    def binary(self) -> bool:
        """Results mirror the request: raw bytes if any input came as raw bytes."""
        return any(tensor.raw is not None for tensor in self.request.inputs)

    @property
    def rows(self) -> int:
        first = next(iter(self.arrays.values()))
        return int(first.shape[0]) if first.ndim else 1

    @property
    def row_limit(self) -> int | None:
        """The model's own cap on rows per batch (0: it cannot batch), or None."""
        if not self.model.batchable:
            return 0
        return self.model.config.max_batch_size


@dataclass(slots=True)
class Rejected:
    """A record that cannot run: `event` is its failed result when a job id is known."""

    code: ErrorCode
    message: str
    event: JobEvent | None
    undecodable: bool = field(default=False)


def failed_event(
    job_id: str,
    code: ErrorCode,
    message: str,
    *,
    worker: str,
    request: InferenceRequest | None = None,
    model_version: str | None = None,
    tenant: str | None = None,
) -> JobEvent:
    """A `failed` event; `model_version` is the version that ran, if any did; `tenant`
    stands for the request's when there is none (it could not be decoded)."""
    return JobEvent(
        job_id=job_id,
        status=JobStatus.FAILED,
        model=request.model if request else None,
        model_version=model_version or (request.model_version if request else None),
        error=ErrorInfo(code=code, message=message),
        worker=worker,
        submitted_at=request.submitted_at if request else None,
        completed_at=utcnow(),
        metadata=request.metadata if request else {},
        callback=request.callback if request else None,
        tenant=request.tenant if request else tenant,
    )


def expired_event(job: Job, worker: str) -> JobEvent:
    """An `expired` event for a job whose deadline passed before it could run."""
    request = job.request
    deadline = request.deadline.isoformat() if request.deadline else "its deadline"
    return JobEvent(
        job_id=request.job_id,
        status=JobStatus.EXPIRED,
        model=request.model,
        model_version=job.model.version,
        error=ErrorInfo(
            code=ErrorCode.DEADLINE_EXCEEDED,
            message=f"the deadline {deadline} passed before the job could run",
        ),
        worker=worker,
        submitted_at=request.submitted_at,
        completed_at=utcnow(),
        metadata=request.metadata,
        callback=request.callback,
        tenant=request.tenant,
    )


def job_id_from_key(key: bytes | None) -> str | None:
    if not key:
        return None
    text = key.decode("utf-8", errors="replace")
    return text if _JOB_ID.match(text) else None


def tenant_from(value: bytes | None) -> str | None:
    """The tenant a request that cannot be decoded names, if one can be read: its failed
    result must stay readable by that tenant only (not by every key, nor by none)."""
    try:
        parsed = json.loads(value or b"")
    except (ValueError, RecursionError):
        return None
    tenant = parsed.get("tenant") if isinstance(parsed, dict) else None
    return tenant if isinstance(tenant, str) and _TENANT.match(tenant) else None


def prepare(
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    repository: ModelRepository,
    *,
    worker: str,
) -> Job | Rejected:
    try:
        request = decode_request(value, headers)
    except DecodeError as exc:
        job_id = job_id_from_key(key)
        event = (
            failed_event(job_id, exc.code, str(exc), worker=worker, tenant=tenant_from(value))
            if job_id
            else None
        )
        return Rejected(exc.code, str(exc), event, undecodable=True)

    def reject(code: ErrorCode, message: str) -> Rejected:
        event = failed_event(request.job_id, code, message, worker=worker, request=request)
        return Rejected(code, message, event)

    try:
        model = repository.get(request.model, request.model_version)
    except (ModelNotFound, VersionNotFound) as exc:
        return reject(exc.code, str(exc))
    try:
        arrays = {tensor.name: tensor.to_numpy() for tensor in request.inputs}
        if len(arrays) != len(request.inputs):
            raise InputError("input names must be unique")
        model.validate(arrays)
    except (TensorError, InputError) as exc:
        return reject(exc.code, str(exc))
    return Job(request, model, arrays)
