"""A submit's records written straight to JSON, without building pydantic models.

Building an `InferenceRequest` (its `Tensor`s validated) and dumping it costs the caller
about three times what this does, and a fire-and-forget client pays it on every job. This
path takes the common arguments only: numpy arrays of a numeric datatype (or BOOL) by
name, and optionally a job id, a version, a deadline, metadata and parameters. For
anything else, and for any argument it would refuse, `direct_request` returns None and the
caller builds the request through the models, which then say what is wrong: both paths
accept the same arguments and write the same bytes (tests/test_direct.py holds them to it).
"""

import re
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from pydantic_core import PydanticSerializationError, to_json

from schemas import SCHEMA_VERSION, Datatype, KafkaRecord, TensorError
from schemas.codec import json_headers, queued_event
from schemas.jsonvalues import checked
from schemas.messages import (
    JOB_ID_PATTERN,
    MAX_INPUTS,
    MODEL_NAME_PATTERN,
    TENANT_PATTERN,
    VERSION_PATTERN,
    new_job_id,
    utcnow,
)
from schemas.rawbytes import pack
from schemas.tensors import MAX_TENSOR_DIMS, MAX_TENSOR_NAME, is_utf8, json_numbers

_JOB_ID = re.compile(JOB_ID_PATTERN)
_MODEL = re.compile(MODEL_NAME_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)
_TENANT = re.compile(TENANT_PATTERN)


@dataclass(frozen=True, slots=True)
class DirectRequest:
    """A request's JSON value, and the fields its `queued` event repeats."""

    job_id: str
    model: str
    model_version: str | None
    submitted_at: datetime
    metadata: dict[str, Any]
    value: bytes

    def record(self) -> KafkaRecord:
        return KafkaRecord(self.job_id.encode(), self.value, json_headers())

    def queued(self, tenant: str | None) -> KafkaRecord:
        return queued_event(
            self.job_id, self.model, self.model_version, self.submitted_at, self.metadata, tenant
        )


def direct_request(
    model: str,
    inputs: object,
    *,
    job_id: str | None,
    model_version: str | None,
    deadline: datetime | None,
    metadata: Mapping[str, Any] | None,
    parameters: Mapping[str, Any] | None,
    tenant: str | None,
    binary: bool,
) -> DirectRequest | None:
    """The request as `encode_request(build_request(...))` writes it, or None when the
    arguments are not all of the kinds this path takes, or not all valid."""
    if not isinstance(model, str) or not _MODEL.fullmatch(model):
        return None
    if job_id is None:
        job_id = new_job_id()
    elif not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        return None
    if model_version is not None and (
        not isinstance(model_version, str) or not _VERSION.fullmatch(model_version)
    ):
        return None
    if deadline is not None and (type(deadline) is not datetime or deadline.utcoffset() is None):
        return None
    if tenant is not None and not _TENANT.fullmatch(tenant):
        return None  # settings changed after they were made are not checked again
    tensors = _tensors(inputs, binary)
    if tensors is None:
        return None
    meta, params = _object(metadata), _object(parameters)
    if meta is None or params is None:
        return None
    submitted_at = utcnow()
    request: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "job_id": job_id, "model": model}
    if model_version is not None:
        request["model_version"] = model_version
    request["inputs"] = tensors
    request["parameters"] = params
    if deadline is not None:
        request["deadline"] = deadline
    request["submitted_at"] = submitted_at
    request["metadata"] = meta
    if tenant is not None:
        request["tenant"] = tenant
    try:  # NaN in a tuple of the metadata passes its check: written as the models do, null
        value = to_json(request, inf_nan_mode="null")
    except PydanticSerializationError:
        return None  # a value JSON cannot carry: the models' way says so
    return DirectRequest(job_id, model, model_version, submitted_at, meta, value)


def _tensors(inputs: object, binary: bool) -> list[dict[str, Any]] | None:
    if not isinstance(inputs, Mapping) or not 1 <= len(inputs) <= MAX_INPUTS:
        return None
    tensors = []
    for name, value in inputs.items():
        tensor = _tensor(name, value, binary)
        if tensor is None:
            return None
        tensors.append(tensor)
    return tensors


def _tensor(name: object, value: object, binary: bool) -> dict[str, Any] | None:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_TENSOR_NAME or not is_utf8(name):
        return None
    if type(value) is not np.ndarray or value.ndim > MAX_TENSOR_DIMS or value.dtype.kind == "O":
        return None
    try:
        datatype = Datatype.from_numpy(value.dtype)
    except TensorError:
        return None
    if datatype is Datatype.BYTES:
        return None
    tensor: dict[str, Any] = {"name": name, "datatype": datatype.value, "shape": list(value.shape)}
    if binary:
        tensor["raw"] = b64encode(pack(value, datatype.numpy_dtype)).decode()
    else:
        tensor["data"] = json_numbers(value.ravel())
    return tensor


def _object(value: object) -> dict[str, Any] | None:
    """`value` as a JSON object's fields, if it is a mapping that travels (see
    schemas.jsonvalues); anything else is left untouched for the models (an iterator of
    pairs read here would reach them empty)."""
    if value is not None and not isinstance(value, Mapping):
        return None
    fields = dict(value or {})
    if not all(isinstance(key, str) for key in fields):
        return None
    try:
        return checked(fields)
    except ValueError:
        return None
