"""Result records of succeeded jobs, written straight to JSON.

This runs once per job on the worker's hot path, where building and validating pydantic
models cost three times what this does. A batch's outputs are cut per job once
(`BatchOutputs`: the datatypes worked out and the raw bytes packed for the whole batch).
A record holds the same bytes that `schemas.encode_event` would write
(tests/test_results.py holds it to that).
"""

import math
from base64 import b64encode
from datetime import datetime
from itertools import accumulate, pairwise
from typing import Any

import numpy.typing as npt
from pydantic_core import to_json

from schemas import SCHEMA_VERSION, Datatype, ErrorCode, JobStatus, KafkaRecord, encode_event
from schemas.codec import json_headers
from schemas.rawbytes import pack
from schemas.tensors import json_numbers
from worker.jobs import Job, failed_event

_SUCCEEDED = JobStatus.SUCCEEDED.value


class _Column:
    """One output of a batch, and what every job's tensor of it shares: its name, its
    datatype and, for binary results, the raw bytes of all its rows, packed once."""

    def __init__(self, name: str, value: npt.NDArray[Any], whole: bool) -> None:
        datatype = Datatype.from_numpy(value.dtype)
        self._name = name
        self._datatype = datatype.value
        self._value = value
        self._dtype = datatype.numpy_dtype
        self._tail = list(value.shape[1:])
        self._whole = whole  # the batch's only job takes the output as it is
        # Rows of one width are packed once for the batch and sliced; BYTES elements vary
        # in length, and the only job of a batch takes the output whole: packed per job.
        fixed = self._dtype.kind != "O" and not whole
        self._row_bytes = self._dtype.itemsize * math.prod(self._tail) if fixed else 0
        self._packed: memoryview | None = None

    def tensor(self, start: int, stop: int, binary: bool) -> dict[str, Any]:
        """The tensor of rows `start` to `stop`, as a JSON-ready dict."""
        shape = list(self._value.shape) if self._whole else [stop - start, *self._tail]
        tensor: dict[str, Any] = {"name": self._name, "datatype": self._datatype, "shape": shape}
        if binary:
            tensor["raw"] = b64encode(self._raw(start, stop)).decode()
        else:
            tensor["data"] = self._data(self._piece(start, stop))
        return tensor

    def _piece(self, start: int, stop: int) -> npt.NDArray[Any]:
        return self._value if self._whole else self._value[start:stop]

    def _raw(self, start: int, stop: int) -> bytes | memoryview:
        if not self._row_bytes:
            return pack(self._piece(start, stop), self._dtype)
        if self._packed is None:
            self._packed = memoryview(pack(self._value, self._dtype))
        return self._packed[start * self._row_bytes : stop * self._row_bytes]

    def _data(self, piece: npt.NDArray[Any]) -> list[Any]:
        """`piece`'s elements as a JSON list (BYTES elements as text)."""
        if self._dtype.kind != "O":
            return json_numbers(piece.ravel())
        return [
            x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in piece.ravel()
        ]


class BatchOutputs:
    """A batch's outputs, cut into each job's result tensors by its rows; a batch of one
    job takes the outputs as they are. ValueError if an output of a batch of several has
    no batch dimension to cut."""

    def __init__(self, outputs: dict[str, npt.NDArray[Any]], rows: list[int]) -> None:
        whole = len(rows) == 1
        total = sum(rows)
        for name, value in outputs.items():
            if not whole and (value.ndim == 0 or value.shape[0] != total):
                raise ValueError(
                    f"output '{name}' has no batch dimension: shape {list(value.shape)}"
                )
        self._columns = [_Column(name, value, whole) for name, value in outputs.items()]
        self._bounds = list(pairwise(accumulate(rows, initial=0)))

    def tensors(self, index: int, binary: bool) -> list[dict[str, Any]]:
        """The result tensors of the batch's `index`-th job, as JSON-ready dicts."""
        start, stop = self._bounds[index]
        return [column.tensor(start, stop, binary) for column in self._columns]


def succeeded_record(
    job: Job,
    tensors: list[dict[str, Any]],
    timings: dict[str, float],
    worker: str,
    completed_at: datetime,
) -> KafkaRecord:
    """`tensors`: the job's from `BatchOutputs.tensors`; `timings`: the fields of
    `schemas.Timings`."""
    request = job.request
    event = {
        "schema_version": SCHEMA_VERSION,
        "job_id": request.job_id,
        "status": _SUCCEEDED,
        "model": job.model.name,
        "model_version": job.model.version,
        "outputs": tensors,
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
