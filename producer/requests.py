"""Turn the arguments of `submit` and `cancel` into the records they send."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy.typing as npt
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from producer.direct import direct_request
from producer.settings import ProducerSettings
from schemas import (
    CancelRequest,
    ErrorCode,
    InferenceRequest,
    JobEvent,
    KafkaRecord,
    Tensor,
    TensorError,
    encode_cancel,
    encode_event,
    encode_request,
)
from schemas.codec import encode_queued, summarize
from schemas.errors import PermanentError, TransientError
from schemas.topics import Topics

Inputs = Mapping[str, npt.ArrayLike | Tensor] | Sequence[Tensor]


class SubmitError(PermanentError, ValueError):
    """The job cannot be submitted as given; nothing was sent."""

    code = ErrorCode.INVALID_REQUEST


class PayloadTooLarge(SubmitError):
    """The encoded request is over `max_request_bytes`; nothing was sent."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class BrokerUnavailable(TransientError, ConnectionError):
    """The broker did not take the records within the client's timeout. `job_ids`: the
    jobs whose records it did not take (from `submit`, that job; from `flush` and
    `close`, every job refused and not reported yet, whichever thread or task submitted
    it; none from a sync `flush(timeout)` that ran out of time before any was refused),
    to submit again under their ids (a job sent twice runs at least once, and its first
    terminal state is kept)."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str, job_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.job_ids = tuple(dict.fromkeys(job_ids))  # in order, each once


def not_acknowledged(job_ids: Sequence[str], error: BaseException) -> str:
    """What `flush` says when records of `job_ids` were not acknowledged."""
    jobs = list(dict.fromkeys(job_ids))
    named = ", ".join(jobs[:3]) + (", ..." if len(jobs) > 3 else "")
    return f"{len(jobs)} job(s) not acknowledged by the broker ({named}): {error}"


def _tensors(inputs: Inputs, binary: bool) -> list[Tensor]:
    if isinstance(inputs, Mapping):
        return [
            value if isinstance(value, Tensor) else Tensor.from_numpy(name, value, binary=binary)
            for name, value in inputs.items()
        ]
    return list(inputs)


def build_request(
    model: str,
    inputs: Inputs,
    *,
    job_id: str | None,
    model_version: str | None,
    callback_url: str | None,
    callback_events: Sequence[str] | None,
    deadline: datetime | None,
    metadata: Mapping[str, Any] | None,
    parameters: Mapping[str, Any] | None,
    tenant: str | None,
    binary: bool,
) -> InferenceRequest:
    fields: dict[str, Any] = {
        "model": model,
        "model_version": model_version,
        "deadline": deadline,
        "metadata": dict(metadata or {}),
        "parameters": dict(parameters or {}),
        "tenant": tenant,
    }
    if job_id is not None:
        fields["job_id"] = job_id
    if callback_url is not None:
        fields["callback"] = {"url": callback_url, "events": list(callback_events or ["completed"])}
    elif callback_events is not None:
        raise SubmitError("callback_events needs a callback_url")
    try:
        return InferenceRequest(inputs=_tensors(inputs, binary), **fields)
    except TensorError as exc:
        raise SubmitError(str(exc)) from exc
    except ValidationError as exc:
        raise SubmitError(summarize(exc)) from exc


def submit_records(
    topics: Topics, request: InferenceRequest, max_bytes: int, *, queued_event: bool = True
) -> list[tuple[str, KafkaRecord]]:
    """The request for the workers and, with `queued_event`, a `queued` event so the job is
    visible at once."""
    try:
        record = _within(encode_request(request), max_bytes)
        records = [(topics.requests(request.model), record)]
        if queued_event:
            records.append((topics.results, encode_queued(request)))
    except PydanticSerializationError as exc:  # a numpy scalar in the metadata, say
        raise SubmitError(f"the request cannot be written as JSON: {exc}") from exc
    return records


def _within(record: KafkaRecord, max_bytes: int) -> KafkaRecord:
    if len(record.value) > max_bytes:
        raise PayloadTooLarge(
            f"the request is {len(record.value)} bytes encoded; the limit is {max_bytes} bytes "
            "(INFERQ_MAX_REQUEST_BYTES)"
        )
    return record


def job_records(
    settings: ProducerSettings,
    model: str,
    inputs: Inputs,
    *,
    job_id: str | None,
    model_version: str | None,
    callback_url: str | None,
    callback_events: Sequence[str] | None,
    deadline: datetime | None,
    metadata: Mapping[str, Any] | None,
    parameters: Mapping[str, Any] | None,
) -> tuple[str, list[tuple[str, KafkaRecord]]]:
    """The job id and the records an SDK client sends for `submit`'s arguments, as its
    settings say: written directly (`producer.direct`) when the arguments are of the kinds
    that path takes, else through the models, which say what is wrong with them."""
    fields: dict[str, Any] = {
        "job_id": job_id,
        "model_version": model_version,
        "deadline": deadline,
        "metadata": metadata,
        "parameters": parameters,
        "tenant": settings.tenant,
        "binary": settings.binary_tensors,
    }
    direct = None
    if callback_url is None and callback_events is None:
        direct = direct_request(model, inputs, **fields)
    if direct is None:
        request = build_request(
            model, inputs, callback_url=callback_url, callback_events=callback_events, **fields
        )
        records = submit_records(
            settings.topics,
            request,
            settings.max_request_bytes,
            queued_event=settings.queued_events,
        )
        return request.job_id, records
    records = [
        (settings.topics.requests(model), _within(direct.record(), settings.max_request_bytes))
    ]
    if settings.queued_events:
        records.append((settings.topics.results, direct.queued(settings.tenant)))
    return direct.job_id, records


def cancel_records(
    topics: Topics, job_id: str, known: JobEvent | None = None, tenant: str | None = None
) -> list[tuple[str, KafkaRecord]]:
    """A `cancelled` event (the store keeps the first terminal state of a job), and the
    cancellation that tells workers not to run the job; `known` is the job's last event,
    `tenant` whose job it is when nothing is known of it."""
    try:
        cancel = CancelRequest(job_id=job_id)
    except ValidationError as exc:
        raise SubmitError(summarize(exc)) from exc
    return [
        (topics.results, encode_event(JobEvent.cancelled(job_id, known, tenant))),
        (topics.cancels, encode_cancel(cancel)),
    ]
