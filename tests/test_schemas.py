"""The message contracts: tensors, the Kafka codec, job status ordering and topic names."""

import itertools
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from schemas import (
    SCHEMA_VERSION,
    TERMINAL_STATUSES,
    Callback,
    Datatype,
    DecodeError,
    ErrorCode,
    ErrorInfo,
    InferenceRequest,
    JobEvent,
    JobStatus,
    Tensor,
    TensorError,
    Timings,
    decode_event,
    decode_request,
    encode_event,
    encode_request,
    supersedes,
)
from schemas.codec import encode_queued
from schemas.status import rank
from schemas.topics import Topics

JSON_HEADERS = [("content-type", b"application/json"), ("inferq-schema-version", b"1")]
VALID_BODY = (
    b'{"model": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}'
)


@pytest.mark.parametrize(
    ("array", "datatype"),
    [
        (np.array([[True, False], [False, True]]), Datatype.BOOL),
        (np.array([-128, 0, 127], dtype=np.int8), Datatype.INT8),
        (np.array([[0, 65535]], dtype=np.uint16), Datatype.UINT16),
        (np.array([2**62, -(2**62)], dtype=np.int64), Datatype.INT64),
        (np.array([[0.1, -2.5], [65504.0, 6.1e-5]], dtype=np.float16), Datatype.FP16),
        (np.array([0.1, 1e-30, -3.4e38], dtype=np.float32), Datatype.FP32),
        (np.array([[0.1], [1e-300]], dtype=np.float64), Datatype.FP64),
    ],
)
def test_numeric_tensors_round_trip_exactly(array: npt.NDArray[Any], datatype: Datatype) -> None:
    tensor = Tensor.from_numpy("x", array)
    assert tensor.datatype is datatype
    assert tensor.shape == list(array.shape)
    via_json = Tensor.model_validate_json(tensor.model_dump_json())
    for back in (tensor.to_numpy(), via_json.to_numpy()):
        assert back.dtype == array.dtype
        assert back.shape == array.shape
        assert np.array_equal(back, array)


def test_bytes_tensors_hold_text() -> None:
    tensor = Tensor.from_numpy("words", np.array([[b"ab", b"c\xc3\xa9"], [b"", b"z"]]))
    assert tensor.datatype is Datatype.BYTES
    assert tensor.shape == [2, 2]
    assert tensor.data == ["ab", "cé", "", "z"]
    back = tensor.to_numpy()
    assert back.dtype == np.dtype(object)
    assert back.tolist() == [["ab", "cé"], ["", "z"]]
    assert Tensor.from_numpy("s", np.array(["héllo", "x"])).data == ["héllo", "x"]


def test_nested_data_is_read_row_major() -> None:
    tensor = Tensor(name="x", datatype=Datatype.INT32, shape=[2, 2], data=[[1, 2], [3, 4]])
    assert tensor.to_numpy().tolist() == [[1, 2], [3, 4]]
    scalar = Tensor(name="s", datatype=Datatype.FP64, shape=[], data=[2.5])
    assert scalar.to_numpy().shape == ()


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "message"),
    [
        ("FP32", [2, 3], [1, 2, 3, 4, 5], "tensor 'x': shape [2, 3] needs 6 elements, data has 5"),
        ("FP32", [1], [], "tensor 'x': shape [1] needs 1 elements, data has 0"),
        ("INT64", [-1, 3], [1, 2, 3], "tensor 'x': shape [-1, 3] has a negative dimension"),
        (
            "FP32",
            [1],
            ["a"],
            "tensor 'x': data is not a list of FP32 values (found strings)",
        ),
        (
            "INT8",
            [1],
            [300],
            "tensor 'x': data is not a list of INT8 values (values outside [-128, 127])",
        ),
    ],
)
def test_tensor_errors(datatype: str, shape: list[int], data: list[Any], message: str) -> None:
    fields = {"name": "x", "datatype": datatype, "shape": shape, "data": data}
    tensor = Tensor.model_validate(fields)
    with pytest.raises(TensorError) as caught:
        tensor.to_numpy()
    assert str(caught.value) == message


@pytest.mark.parametrize("shape", [[10**5000, 1], [0, -(10**5000)], [2**62] * 16, [2**63, 0]])
def test_shapes_beyond_any_array_are_refused_without_printing_them(shape: list[int]) -> None:
    tensor = Tensor(name="x", datatype=Datatype.FP32, shape=shape, data=[1.0])
    with pytest.raises(TensorError) as caught:
        tensor.to_numpy()
    assert str(caught.value) == (
        "tensor 'x': its shape has a dimension or an element count over 2**63 - 1, "
        "more than any array can hold"
    )


def test_non_finite_floats_travel_spelled_in_data() -> None:
    values = np.array([[np.nan, 1.0], [np.inf, -np.inf]], np.float64)
    tensor = Tensor.from_numpy("y", values)
    written = json.loads(tensor.model_dump_json())["data"]  # spelled on the wire only:
    assert written == ["NaN", 1.0, "Infinity", "-Infinity"]  # in memory, the floats stay
    back = Tensor.model_validate_json(tensor.model_dump_json()).to_numpy()
    np.testing.assert_array_equal(back, values)
    nested = Tensor(name="x", datatype=Datatype.FP16, shape=[2, 1], data=[["-Infinity"], [2]])
    assert nested.to_numpy().tolist() == [[-np.inf], [2.0]]


def test_numpy_dtype_without_a_datatype() -> None:
    with pytest.raises(TensorError) as caught:
        Tensor.from_numpy("c", np.array([1 + 2j], dtype=np.complex64))
    assert str(caught.value) == "numpy dtype complex64 has no Open Inference Protocol datatype"


@pytest.mark.parametrize(
    ("datatype", "data", "why"),
    [
        ("INT64", [1.5], "found fractional numbers"),
        ("INT64", [1.9, True], "found fractional numbers"),
        ("BOOL", ["false", 0], "found strings"),
        ("BOOL", [1, 0], "found integers"),
        ("UINT8", [-1], "values outside [0, 255]"),
        ("INT64", [2**70], "found mixed or out-of-range values"),
        ("BYTES", [1, 2], "found integers"),
        ("FP32", ["nan", 1.0], "found strings"),  # only "NaN", "Infinity", "-Infinity"
        ("INT32", ["NaN"], "found strings"),
        ("FP32", ["NaN", 10**400], "found mixed or out-of-range values"),  # was a 500
    ],
)
def test_data_that_would_change_value_is_an_error(datatype: str, data: list[Any], why: str) -> None:
    tensor = Tensor.model_validate(
        {"name": "x", "datatype": datatype, "shape": [len(data)], "data": data}
    )
    with pytest.raises(TensorError) as caught:
        tensor.to_numpy()
    assert str(caught.value) == f"tensor 'x': data is not a list of {datatype} values ({why})"


def test_ragged_data_is_an_error() -> None:
    tensor = Tensor(name="x", datatype=Datatype.FP32, shape=[3], data=[[1, 2], [3]])
    with pytest.raises(TensorError) as caught:
        tensor.to_numpy()
    assert str(caught.value) == "tensor 'x': data is not a list of FP32 values (ragged nesting)"


def full_request() -> InferenceRequest:
    return InferenceRequest(
        job_id="job-1",
        model="breast_cancer",
        model_version="2",
        inputs=[Tensor.from_numpy("input", np.array([[1.5, 2.0]], dtype=np.float32))],
        parameters={"threshold": 0.5},
        callback=Callback.model_validate({"url": "http://hooks.test/done", "events": ["running"]}),
        deadline=datetime(2030, 1, 1, tzinfo=UTC),
        submitted_at=datetime(2025, 5, 1, 12, 30, tzinfo=UTC),
        metadata={"tenant": "a", "tags": [1, 2]},
    )


def test_request_round_trip_with_headers() -> None:
    request = full_request()
    record = encode_request(request)
    assert record.key == b"job-1"
    assert record.headers == JSON_HEADERS
    assert decode_request(record.value, record.headers) == request
    assert decode_request(record.value) == request


def test_event_round_trip() -> None:
    event = JobEvent(
        job_id="job-1",
        status=JobStatus.SUCCEEDED,
        model="m",
        model_version="1",
        outputs=[Tensor.from_numpy("y", np.array([1, 2], dtype=np.int64))],
        timings=Timings(queued_ms=1.5, inference_ms=2.0, batch_size=3),
        worker="w",
        completed_at=datetime(2025, 5, 1, tzinfo=UTC),
    )
    record = encode_event(event)
    assert record.key == b"job-1"
    assert record.headers == JSON_HEADERS
    assert decode_event(record.value, record.headers) == event


def test_queued_event_copies_the_request() -> None:
    request = full_request()
    assert JobEvent.queued(request) == JobEvent(
        job_id="job-1",
        status=JobStatus.QUEUED,
        model="breast_cancer",
        model_version="2",
        submitted_at=request.submitted_at,
        metadata={"tenant": "a", "tags": [1, 2]},
        callback=request.callback,
    )


@pytest.mark.parametrize(
    ("value", "headers", "code", "message"),
    [
        (b"", None, "malformed_record", "record has no value"),
        (None, JSON_HEADERS, "malformed_record", "record has no value"),
        (b"{not json", None, "malformed_record", "record value is not valid JSON"),
        (b'{"model": "m"}', None, "invalid_request", "inputs: Field required"),
        (b"{}", None, "invalid_request", "model: Field required; inputs: Field required"),
        (b"[1]", None, "invalid_request", "body: Input should be an object"),
        (
            b'{"inputs": [{}]}',
            None,
            "invalid_request",
            "model: Field required; inputs.0.name: Field required; "
            "inputs.0.datatype: Field required; and 1 more",
        ),
        (
            VALID_BODY,
            [("content-type", b"text/plain")],
            "malformed_record",
            "unsupported content type 'text/plain'; expected 'application/json'",
        ),
        (
            VALID_BODY,
            [("content-type", b"application/json"), ("inferq-schema-version", b"2")],
            "unsupported_schema_version",
            "schema version '2' is not supported; this build reads version 1",
        ),
        (
            VALID_BODY[:-1] + b', "schema_version": 2}',
            JSON_HEADERS,
            "unsupported_schema_version",
            "schema version 2 is not supported; this build reads version 1",
        ),
    ],
)
def test_decode_errors(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, code: str, message: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_request(value, headers)
    assert caught.value.code == code
    assert caught.value.message == message
    assert str(caught.value) == message


def test_a_future_version_body_is_reported_as_unsupported() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_request(b'{"schema_version": 2, "job_id": "j", "task": {"model": "m"}}')
    assert caught.value.code == ErrorCode.UNSUPPORTED_SCHEMA_VERSION
    assert caught.value.message == "schema version 2 is not supported; this build reads version 1"


def test_a_time_without_zone_is_invalid() -> None:
    body = VALID_BODY[:-1] + b', "submitted_at": "2025-01-01T00:00:00"}'
    with pytest.raises(DecodeError) as caught:
        decode_request(body)
    assert caught.value.code == ErrorCode.INVALID_REQUEST
    assert caught.value.message == "submitted_at: Input should have timezone info"


def test_valid_body_decodes_without_headers() -> None:
    request = decode_request(VALID_BODY)
    assert request.schema_version == SCHEMA_VERSION
    assert request.model == "m"
    assert request.inputs[0].to_numpy().tolist() == [1.0]


def test_error_info_is_code_and_message() -> None:
    info = ErrorInfo(code=ErrorCode.MODEL_NOT_FOUND, message="gone")
    assert info.model_dump() == {"code": "model_not_found", "message": "gone"}


NON_TERMINAL = (JobStatus.QUEUED, JobStatus.RUNNING)


def test_ranks() -> None:
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELLED}
    assert terminal == TERMINAL_STATUSES
    assert [rank(s) for s in JobStatus] == [0, 1, 2, 2, 2, 2]
    assert [s.terminal for s in JobStatus] == [False, False, True, True, True, True]


@pytest.mark.parametrize(("new", "old"), list(itertools.product(JobStatus, JobStatus)))
def test_supersedes_truth_table(new: JobStatus, old: JobStatus) -> None:
    if old in TERMINAL_STATUSES:
        expected = False  # terminal never regresses, and the first terminal state wins
    elif new in TERMINAL_STATUSES:
        expected = True
    else:
        expected = NON_TERMINAL.index(new) >= NON_TERMINAL.index(old)
    assert supersedes(new, old) is expected


def test_topics() -> None:
    topics = Topics()
    assert topics.requests("diabetes") == "inferq.requests.diabetes"
    assert topics.results == "inferq.results"
    assert topics.dlq == "inferq.dlq"
    assert topics.worker_group("diabetes") == "inferq.workers.diabetes"
    acme = Topics("acme")
    assert (acme.requests("m"), acme.results, acme.dlq, acme.worker_group("m")) == (
        "acme.requests.m",
        "acme.results",
        "acme.dlq",
        "acme.workers.m",
    )


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([[1, -2]], dtype=np.int64),
        np.array([True, False]),
        np.array([0.5], dtype=np.float16),
        np.array(["héllo", "", "x"]),
    ],
)
def test_binary_tensors_round_trip_through_json(array: np.ndarray[Any, Any]) -> None:
    tensor = Tensor.from_numpy("x", array, binary=True)
    assert tensor.data is None
    again = Tensor.model_validate_json(tensor.model_dump_json(exclude_none=True))
    assert again.raw == tensor.raw
    got = again.to_numpy()
    assert got.shape == array.shape
    assert got.tolist() == array.tolist()


def test_binary_tensor_errors() -> None:
    short = Tensor(name="x", datatype=Datatype.FP32, shape=[2], raw=b"\x00" * 7)
    with pytest.raises(TensorError) as caught:
        short.to_numpy()
    assert (
        str(caught.value) == "tensor 'x': shape [2]: 2 elements of 4 bytes need 8 bytes, raw has 7"
    )
    cut = Tensor(name="s", datatype=Datatype.BYTES, shape=[1], raw=b"\x05\x00\x00\x00ab")
    with pytest.raises(TensorError) as caught:
        cut.to_numpy()
    assert (
        str(caught.value) == "tensor 's': shape [1]: raw BYTES element 0 needs 5 bytes past the end"
    )
    latin = Tensor(name="s", datatype=Datatype.BYTES, shape=[1], raw=b"\x02\x00\x00\x00\xe9t")
    with pytest.raises(TensorError) as caught:
        latin.to_numpy()  # refused, not changed into U+FFFD
    assert str(caught.value) == "tensor 's': shape [1]: raw BYTES element 0 is not valid UTF-8 text"
    for binary in (False, True):
        with pytest.raises(TensorError) as caught:
            Tensor.from_numpy("s", np.array([b"\xe9t"], dtype=object), binary=binary)
        assert str(caught.value) == (
            "tensor 's': a BYTES element is bytes that are not valid UTF-8 text"
        )
    for fields in ({}, {"data": [1.0], "raw": b"\x00" * 4}):
        with pytest.raises(ValueError, match="a tensor has either `data` or `raw`"):
            Tensor.model_validate({"name": "x", "datatype": "FP32", "shape": [1], **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"model_version": "3", "tenant": "acme", "job_id": "order-1"},
        {"metadata": {"customer": "c-9", "tags": ["ü", 1.5, None]}, "parameters": {"k": 1}},
        {"callback": {"url": "https://app.example.com/hook", "events": ["completed", "running"]}},
        {"deadline": datetime(2030, 1, 1, tzinfo=UTC)},
    ],
)
def test_queued_record_is_the_queued_event_byte_for_byte(fields: dict[str, Any]) -> None:
    request = InferenceRequest(
        model="breast_cancer",
        inputs=[Tensor(name="input", datatype=Datatype.FP32, shape=[1, 2], data=[1.0, 2.0])],
        **fields,
    )
    assert encode_queued(request) == encode_event(JobEvent.queued(request))


def test_new_job_ids_are_32_hex_digits_the_time_first() -> None:
    tensor = Tensor(name="x", datatype=Datatype.FP32, shape=[1], data=[1.0])
    before_ms = time.time_ns() // 1_000_000
    made = [InferenceRequest(model="m", inputs=[tensor]).job_id for _ in range(1000)]
    after_ms = time.time_ns() // 1_000_000
    assert len(set(made)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", job_id) for job_id in made)
    assert all(before_ms <= int(job_id[:12], 16) <= after_ms for job_id in made)
    assert [job_id[:12] for job_id in made] == sorted(job_id[:12] for job_id in made)
