"""Properties of the message contracts and of the result store, over generated inputs.

Each property holds for every input hypothesis draws: codec round trips, both tensor forms,
decoders that fail only with DecodeError, and the one ordering rule of job states, as a
pure fold and as the SQLite store applies it.
"""

import json
import math
from datetime import timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from results_api.ingest import winners
from results_api.sqlite_store import SQLiteStore
from results_api.store import Encoded
from schemas import (
    CONTENT_TYPE_JSON,
    HEADER_CONTENT_TYPE,
    HEADER_SCHEMA_VERSION,
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
    decode_event_head,
    decode_request,
    encode_event,
    encode_request,
    supersedes,
)
from schemas.messages import JOB_ID_PATTERN, MODEL_NAME_PATTERN, VERSION_PATTERN
from schemas.status import rank

BOUNDED = settings(max_examples=200, deadline=None)

# -- strategies --------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=4)

# Aware times at whole-minute offsets: an RFC 3339 offset has no seconds.
zones = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
aware_times = st.datetimes(timezones=zones)

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
# Text, with the characters numpy's text arrays treat specially (NUL, trailing blanks).
texts_with_edges = st.text() | st.text(alphabet="a\x00 \t\u00e9\U0001f600", max_size=4)


@st.composite
def arrays(draw: st.DrawFn, datatype: Datatype) -> npt.NDArray[Any]:
    """Any array of the datatype: every value numpy has for it, NaN and infinities included."""
    shape = draw(shapes)
    if datatype is Datatype.BYTES:
        size = math.prod(shape)
        texts = draw(st.lists(texts_with_edges, min_size=size, max_size=size))
        array = np.empty(len(texts), dtype=object)
        array[:] = texts
        return array.reshape(shape)
    return draw(hnp.arrays(datatype.numpy_dtype, shape))


def finite(array: npt.NDArray[Any]) -> bool:
    """JSON has no NaN or infinity: the `data` form travels finite numbers only."""
    return array.dtype.kind != "f" or bool(np.isfinite(array).all())


any_arrays = st.sampled_from(Datatype).flatmap(arrays)
travelling_tensors = st.builds(
    lambda array, name, binary: Tensor.from_numpy(name, array, binary=binary),
    any_arrays.filter(finite),
    st.text(min_size=1, max_size=20),
    st.booleans(),
)

requests = st.builds(
    InferenceRequest,
    job_id=st.from_regex(JOB_ID_PATTERN, fullmatch=True),
    model=st.from_regex(MODEL_NAME_PATTERN, fullmatch=True),
    model_version=st.none() | st.from_regex(VERSION_PATTERN, fullmatch=True),
    inputs=st.lists(travelling_tensors, min_size=1, max_size=3),
    parameters=json_objects,
    callback=st.none() | st.builds(Callback, url=st.just("https://example.com/hook")),
    deadline=st.none() | aware_times,
    submitted_at=aware_times,
    metadata=json_objects,
)

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
events = st.builds(
    JobEvent,
    job_id=st.text(),
    status=st.sampled_from(JobStatus),
    model=st.none() | st.from_regex(MODEL_NAME_PATTERN, fullmatch=True),
    model_version=st.none() | st.from_regex(VERSION_PATTERN, fullmatch=True),
    outputs=st.none() | st.lists(travelling_tensors, max_size=2),
    error=st.none() | st.builds(ErrorInfo, code=st.text(), message=st.text()),
    timings=st.none()
    | st.builds(
        Timings, queued_ms=finite_floats, inference_ms=finite_floats, batch_size=st.integers()
    ),
    worker=st.none() | st.text(),
    submitted_at=st.none() | aware_times,
    completed_at=st.none() | aware_times,
    metadata=json_objects,
)

# -- codec -------------------------------------------------------------------------------


@BOUNDED
@given(requests)
def test_a_request_survives_encode_and_decode(request: InferenceRequest) -> None:
    record = encode_request(request)
    assert record.key == request.job_id.encode()
    assert decode_request(record.value, record.headers) == request


@BOUNDED
@given(events)
def test_an_event_survives_encode_and_decode(event: JobEvent) -> None:
    record = encode_event(event)
    assert record.key == event.job_id.encode()
    assert decode_event(record.value, record.headers) == event
    head = decode_event_head(record.value, record.headers)
    assert (head.job_id, head.status) == (event.job_id, event.status)


# What Python's JSON reader makes of a body: NaN, infinities, lone surrogates, deep nesting.
any_text = st.text(st.characters(exclude_categories=[]), max_size=4)
wild_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=10,
) | st.integers(1, 300).map(lambda depth: json.loads("[" * depth + "]" * depth))
wild_objects = st.dictionaries(any_text, wild_values, max_size=3)


@BOUNDED
@given(wild_objects)
def test_metadata_and_parameters_travel_exactly_or_are_refused(value: dict[str, Any]) -> None:
    tensor = Tensor(name="x", datatype=Datatype.FP32, shape=[1], data=[1.0])
    try:
        request = InferenceRequest(model="m", inputs=[tensor], metadata=value, parameters=value)
    except ValidationError:
        return
    record = encode_request(request)
    decoded = decode_request(record.value, record.headers)
    assert (decoded.metadata, decoded.parameters) == (value, value)


headers = st.lists(
    st.tuples(
        st.sampled_from([HEADER_CONTENT_TYPE, HEADER_SCHEMA_VERSION]) | st.text(max_size=10),
        st.sampled_from([CONTENT_TYPE_JSON, b"1", b"2"]) | st.binary(max_size=10),
    ),
    max_size=3,
)
# Bytes of every kind: noise, any JSON, and messages with a field replaced by any JSON value.
message_fields = st.sampled_from(["schema_version", "job_id", "status", "model", "inputs"])
record_values = st.one_of(
    st.none(),
    st.binary(),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.builds(
        lambda request, field, value: json.dumps(
            {**json.loads(encode_request(request).value), field: value}
        ).encode(),
        requests,
        message_fields,
        json_values,
    ),
)


@BOUNDED
@given(record_values, st.none() | headers)
def test_decoders_fail_only_with_decode_error(
    value: bytes | None, record_headers: list[tuple[str, bytes]] | None
) -> None:
    codes = []
    for decode in (decode_request, decode_event, decode_event_head):
        try:
            decode(value, record_headers)
        except DecodeError as exc:
            codes.append(exc.code)
    assert set(codes) <= set(ErrorCode)


# -- tensors -----------------------------------------------------------------------------


def assert_same(got: npt.NDArray[Any], want: npt.NDArray[Any]) -> None:
    """Equal dtype, shape and values, bit for bit where it matters (NaN, the sign of zero)."""
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    if want.dtype.kind == "O":
        assert got.tolist() == want.tolist()
    elif want.dtype.kind == "f":
        assert np.array_equal(got, want, equal_nan=True)
        assert np.array_equal(np.signbit(got), np.signbit(want))
    else:
        assert np.array_equal(got, want)


@pytest.mark.parametrize("datatype", list(Datatype), ids=str)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_both_tensor_forms_give_the_same_array(datatype: Datatype, data: st.DataObject) -> None:
    array = data.draw(arrays(datatype), label="array")
    as_data = Tensor.from_numpy("x", array)
    as_raw = Tensor.from_numpy("x", array, binary=True)
    assert as_data.datatype is as_raw.datatype is datatype
    assert_same(as_data.to_numpy(), array)
    assert_same(as_raw.to_numpy(), array)
    # Through JSON: raw bytes carry every value; data carries finite numbers.
    assert_same(Tensor.model_validate_json(as_raw.model_dump_json()).to_numpy(), array)
    if finite(array):
        assert_same(Tensor.model_validate_json(as_data.model_dump_json()).to_numpy(), array)


# Shapes of every size, those whose product overflows int64 included.
any_shapes = st.lists(st.integers(0, 4) | st.integers(min_value=-2, max_value=2**70), max_size=4)


@BOUNDED
@given(
    st.sampled_from(Datatype),
    any_shapes,
    st.one_of(
        st.lists(json_values, max_size=8).map(lambda data: {"data": data}),
        st.binary(max_size=40).map(lambda raw: {"raw": raw}),
    ),
)
def test_any_tensor_gives_an_array_or_a_tensor_error(
    datatype: Datatype, shape: list[int], form: dict[str, Any]
) -> None:
    tensor = Tensor.model_validate({"name": "x", "datatype": datatype, "shape": shape, **form})
    try:
        array = tensor.to_numpy()
    except TensorError:
        return
    assert (array.dtype, list(array.shape)) == (datatype.numpy_dtype, shape)


numeric_dtypes = st.sampled_from([d.numpy_dtype for d in Datatype if d is not Datatype.BYTES])


@BOUNDED
@given(st.sampled_from(Datatype), numeric_dtypes.flatmap(lambda dtype: hnp.arrays(dtype, shapes)))
def test_data_is_taken_as_it_is_or_refused(datatype: Datatype, sent: npt.NDArray[Any]) -> None:
    """Numbers of any kind as `data` of any datatype: refused, or kept (an integer exactly,
    a finite number finite: rounding a float to a narrower float is all that may happen)."""
    data = sent.tolist() if sent.ndim else [sent.item()]  # nested rows, or a scalar's one element
    tensor = Tensor(name="x", datatype=datatype, shape=list(sent.shape), data=data)
    try:
        array = tensor.to_numpy()
    except TensorError:
        return
    assert (array.dtype, array.shape) == (datatype.numpy_dtype, sent.shape)
    if array.dtype.kind == "f":
        assert np.array_equal(np.isfinite(array), np.isfinite(sent))
    else:
        assert array.tolist() == sent.tolist()


# -- job states --------------------------------------------------------------------------


def fold(events: list[JobEvent]) -> JobEvent:
    """What a reader of the results topic keeps of one job: `supersedes`, event by event."""
    kept = events[0]
    for event in events[1:]:
        if supersedes(event.status, kept.status):
            assert not kept.status.terminal  # a terminal state is never replaced
            assert rank(event.status) >= rank(kept.status)  # other states only move up
            kept = event
    return kept


def job_events(job_id: str, statuses: list[JobStatus]) -> list[JobEvent]:
    """One event per status, each told apart by its `worker`."""
    return [JobEvent(job_id=job_id, status=s, worker=f"w{i}") for i, s in enumerate(statuses)]


statuses = st.lists(st.sampled_from(JobStatus), min_size=1, max_size=8)


@BOUNDED
@given(statuses.flatmap(st.permutations))
def test_the_first_terminal_state_wins_in_any_order(arrived: list[JobStatus]) -> None:
    events = job_events("j", arrived)
    kept = fold(events)
    terminal = [event for event in events if event.status.terminal]
    if terminal:
        assert kept == terminal[0]
    else:
        top = max(rank(status) for status in arrived)
        assert kept == [event for event in events if rank(event.status) == top][-1]


@BOUNDED
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from(JobStatus)), min_size=1, max_size=12
    ),
    st.lists(st.integers(1, 4), max_size=12),
    st.booleans(),
)
async def test_the_store_keeps_what_the_fold_keeps(
    arrived: list[tuple[str, JobStatus]], batch_sizes: list[int], as_ingested: bool
) -> None:
    """Events for a few jobs in any order, applied in fetch-sized batches, either as the API
    writes them (`apply`) or as ingestion does (`winners` of a fetch, then `apply_encoded`)."""
    events = [
        JobEvent(job_id=job, status=status, worker=f"w{i}")
        for i, (job, status) in enumerate(arrived)
    ]
    store = await SQLiteStore(":memory:", retention_s=3600.0).open()
    try:
        at = 0
        for size in [*batch_sizes, len(events)]:
            batch, at = events[at : at + size], at + size
            if as_ingested:
                encoded: list[Encoded] = [
                    (e.job_id, e.status, encode_event(e).value) for e in batch
                ]
                await store.apply_encoded([event for event, _ in winners((e, 0) for e in encoded)])
            else:
                await store.apply(batch)
        for job in {event.job_id for event in events}:
            assert await store.get(job) == fold([e for e in events if e.job_id == job])
    finally:
        await store.close()
