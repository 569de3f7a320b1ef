"""Result records of succeeded jobs, written straight to JSON.

This runs once per job on the worker's hot path, where building and validating pydantic
models cost three times what this does. The record decodes to the same `JobEvent` that
`schemas.encode_event` would write (tests/test_results.py holds it to that).
"""

from base64 import b64encode
from datetime import datetime
from typing import Any

import numpy.typing as npt
from pydantic_core import to_json

from schemas import SCHEMA_VERSION, Datatype, ErrorCode, JobStatus, KafkaRecord, encode_event
from schemas.codec import json_headers
from schemas.rawbytes import pack
from schemas.tensors import json_numbers
from worker.jobs import Job, failed_event


def _tensor(name: str, value: npt.NDArray[Any], binary: bool) -> dict[str, Any]:
    datatype = Datatype.from_numpy(value.dtype)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype.value, "shape": list(value.shape)}
    if binary:
        tensor["raw"] = b64encode(pack(value, datatype.numpy_dtype)).decode()
    elif datatype is Datatype.BYTES:
        tensor["data"] = [
            x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in value.ravel()
        ]
    else:
        tensor["data"] = json_numbers(value.ravel())
    return tensor


def succeeded_record(
    job: Job,
    outputs: dict[str, npt.NDArray[Any]],
    timings: dict[str, float],
    worker: str,
    completed_at: datetime,
) -> KafkaRecord:
    """`timings`: the fields of `schemas.Timings`."""
    request = job.request
    binary = job.binary
    event = {
        "schema_version": SCHEMA_VERSION,
        "job_id": request.job_id,
        "status": JobStatus.SUCCEEDED.value,
        "model": job.model.name,
        "model_version": job.model.version,
        "outputs": [_tensor(name, value, binary) for name, value in outputs.items()],
        "timings": timings,
        "worker": worker,
        "submitted_at": request.submitted_at,
        "completed_at": completed_at,
        "metadata": request.metadata,
    }
    if request.callback is not None:
        event["callback"] = request.callback
    if request.tenant is not None:
        event["tenant"] = request.tenant
    return KafkaRecord(request.job_id.encode(), to_json(event), json_headers())


def record_bytes(record: KafkaRecord) -> int:
    """The bytes of a record's key, value and headers."""
    headers = sum(len(name) + len(value) for name, value in record.headers)
    return len(record.key) + len(record.value) + headers


def within_limit(job: Job, record: KafkaRecord, max_bytes: int, worker: str) -> KafkaRecord:
    """`record`, or a `failed` result in its place when it is over `max_bytes`, which says
    the size and the limit (a result the broker refuses anyway is `worker.refused`'s)."""
    size = record_bytes(record)
    if size <= max_bytes:
        return record
    message = (
        f"the result is {size} bytes encoded, over the limit of {max_bytes} bytes "
        "(INFERQ_MAX_RESULT_BYTES): send fewer rows per job, or raise the limit with the "
        "broker's message.max.bytes"
    )
    request = job.request
    return encode_event(
        failed_event(
            request.job_id,
            ErrorCode.PAYLOAD_TOO_LARGE,
            message,
            worker=worker,
            request=request,
            model_version=job.model.version,
        )
    )
