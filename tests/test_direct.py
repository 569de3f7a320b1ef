"""The SDK's direct path (`producer.direct`) against the models' path it stands in for.

For every argument of the kinds the direct path takes, both paths agree: each refuses what
the other refuses, and what they take they write byte for byte alike (the request and its
`queued` event). Arguments of other kinds go through the models.
"""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from producer import ProducerSettings
from producer.direct import direct_request
from producer.requests import SubmitError, build_request, job_records
from schemas import (
    Datatype,
    JobEvent,
    JobStatus,
    decode_event,
    decode_request,
    encode_event,
    encode_request,
)
from schemas.codec import encode_queued
from schemas.messages import JOB_ID_PATTERN, MODEL_NAME_PATTERN, VERSION_PATTERN

BOUNDED = settings(max_examples=500, deadline=None)

NUMERIC = [d for d in Datatype if d is not Datatype.BYTES]


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` three times in four: most drawn arguments are then taken as a whole."""
    return st.one_of(valid, valid, valid, other)


finite_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
any_scalars = finite_scalars | st.floats() | st.text(max_size=8)  # NaN, infinity, surrogates
finite_objects = st.dictionaries(
    st.text(alphabet="abc", max_size=3),
    st.recursive(finite_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6),
    max_size=3,
)
any_objects = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        any_scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    ),
    max_size=3,
)
objects = mostly(st.none() | finite_objects, any_objects)


def names(pattern: str) -> st.SearchStrategy[str]:
    return mostly(st.from_regex(pattern, fullmatch=True), st.text(max_size=12))


zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
deadlines = mostly(st.none() | st.datetimes(timezones=zones), st.datetimes())
tensor_names = mostly(
    st.text(min_size=1, max_size=3) | st.just("x" * 256), st.just("") | st.just("x" * 257)
)
arrays = st.sampled_from(NUMERIC).flatmap(
    lambda d: hnp.arrays(
        d.numpy_dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)
    )
)
inputs = st.dictionaries(tensor_names, arrays, min_size=1, max_size=3)


def through_models(model: str, given: dict[str, Any], submitted_at: datetime) -> bytes | None:
    """The request's bytes as the models write it, or None when they refuse it."""
    try:
        request = build_request(model, callback_url=None, callback_events=None, **given)
    except SubmitError:
        return None
    return encode_request(request.model_copy(update={"submitted_at": submitted_at})).value


def agree(model: str, **given: Any) -> None:
    """Both paths refuse `given`, or both take it and write the same bytes."""
    direct = direct_request(model, **given)
    if given["job_id"] is None and direct is not None:
        given["job_id"] = direct.job_id  # the models would make another one
    submitted_at = direct.submitted_at if direct is not None else datetime.now(UTC)
    expected = through_models(model, given, submitted_at)
    if direct is None:
        assert expected is None, "the direct path refused what the models take"
        return
    assert expected is not None, "the direct path took what the models refuse"
    assert direct.value == expected
    request = decode_request(direct.value)
    assert direct.queued(given["tenant"]).value == encode_queued(request).value


@BOUNDED
@given(
    model=names(MODEL_NAME_PATTERN),
    inputs=inputs,
    job_id=st.none() | names(JOB_ID_PATTERN),
    model_version=st.none() | names(VERSION_PATTERN),
    deadline=deadlines,
    metadata=objects,
    parameters=objects,
    tenant=st.none() | st.just("team-a"),
    binary=st.booleans(),
)
def test_both_paths_take_and_write_the_same(model: str, **given: Any) -> None:
    agree(model, **given)


ROW = {"input": np.arange(3, dtype=np.float32)}
EDGES: list[tuple[str, dict[str, Any]]] = [
    ("iris\n", {}),
    ("iris", {"job_id": "j-1\n"}),
    ("iris", {"model_version": "1\n"}),
    ("iris", {"inputs": {"x": np.array([np.nan, -np.inf, 1.5], np.float32)}, "binary": False}),
    ("iris", {"inputs": {"x": np.array([np.inf, 65504], np.float16)}, "binary": False}),
    ("iris", {"inputs": {"x": np.array([2**64 - 1, 0], np.uint64)}, "binary": False}),
    ("iris", {"inputs": {"x": np.array([True, False])}, "binary": False}),
    ("iris", {"inputs": {"x": np.array(2.5)}}),
    ("iris", {"inputs": {"x": np.zeros((0, 3), np.int8)}}),
    ("iris", {"inputs": {"x": np.arange(6, dtype=np.int32).reshape(2, 3).T}}),
    ("iris", {"inputs": {"x": np.arange(3, dtype=">f4")}}),
    ("iris", {"inputs": {"x" * 256: np.zeros(1)}}),
    ("iris", {"inputs": {"x" * 257: np.zeros(1)}}),
    ("iris", {"inputs": {"": np.zeros(1)}}),
    ("iris", {"metadata": {"x": float("nan")}}),
    ("iris", {"metadata": {"x": "\ud800"}}),
    ("iris", {"metadata": {"\ud800": 1}}),
    ("iris", {"metadata": {1: "a"}}),
    (
        "iris",
        {"parameters": {"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}},
    ),
    ("iris", {"metadata": {"none": None, "nested": {"a": [None, 1.5]}}}),
    ("iris", {"metadata": {"a": (float("nan"), 1)}, "parameters": {"t": (float("inf"),)}}),
    ("iris", {"inputs": {"\ud800": np.zeros(1)}}),
    ("iris", {"tenant": "not a tenant!"}),
    ("iris", {"deadline": datetime(2030, 1, 1)}),
    ("iris", {"deadline": datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=-3)))}),
]


@pytest.mark.parametrize(("model", "changes"), EDGES)
def test_both_paths_agree_at_the_edges(model: str, changes: dict[str, Any]) -> None:
    given: dict[str, Any] = {
        "inputs": ROW,
        "job_id": None,
        "model_version": None,
        "deadline": None,
        "metadata": None,
        "parameters": None,
        "tenant": None,
        "binary": True,
    }
    agree(model, **{**given, **changes})


def test_a_request_written_directly_reads_back_as_sent() -> None:
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    deadline = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    direct = direct_request(
        "iris",
        {"input": rows},
        job_id="order-1",
        model_version="3",
        deadline=deadline,
        metadata={"customer": 42},
        parameters={"top_k": 2},
        tenant="team-a",
        binary=True,
    )
    assert direct is not None
    request = decode_request(direct.value)
    assert (request.job_id, request.model, request.model_version) == ("order-1", "iris", "3")
    assert (request.deadline, request.tenant) == (deadline, "team-a")
    assert (request.metadata, request.parameters) == ({"customer": 42}, {"top_k": 2})
    np.testing.assert_array_equal(request.inputs[0].to_numpy(), rows)
    queued = decode_event(direct.queued("team-a").value)
    assert (queued.job_id, queued.status, queued.tenant) == ("order-1", JobStatus.QUEUED, "team-a")


@pytest.mark.parametrize(
    ("inputs", "why"),
    [
        ({"input": [[1.0, 2.0]]}, "a list"),
        ({"input": np.float32(2.5)}, "a numpy scalar"),
        ({"input": np.array(["a", "b"])}, "text (BYTES)"),
        ({"input": np.ma.masked_array([1.0])}, "an ndarray subclass"),
        ({f"in{i}": np.zeros(1) for i in range(65)}, "over 64 inputs"),
        ({}, "no inputs"),
        ({"input": np.zeros((1,) * 17)}, "over 16 dimensions"),
    ],
)
def test_other_inputs_go_through_the_models(inputs: dict[str, Any], why: str) -> None:
    direct = direct_request(
        "iris",
        inputs,
        job_id=None,
        model_version=None,
        deadline=None,
        metadata=None,
        parameters=None,
        tenant=None,
        binary=True,
    )
    assert direct is None, why


SDK = ProducerSettings(bootstrap_servers="127.0.0.1:9", topic_prefix="t")


def sdk_records(model: str, inputs: Any, **changes: Any) -> tuple[str, list[Any]]:
    """What the SDK sends for `submit(model, inputs, **changes)`, job id "j-1"."""
    arguments: dict[str, Any] = {
        "job_id": "j-1",
        "model_version": None,
        "callback_url": None,
        "callback_events": None,
        "deadline": None,
        "metadata": None,
        "parameters": None,
    }
    return job_records(SDK, model, inputs, **{**arguments, **changes})


def test_the_sdk_writes_directly_what_it_can_and_through_the_models_the_rest() -> None:
    job_id, records = sdk_records("iris", {"input": np.zeros((1, 4))})
    assert job_id == "j-1"
    assert [topic for topic, _ in records] == ["t.requests.iris", "t.results"]
    # a callback, and inputs as a list, take the models' path; it writes the same fields
    hook = "https://example.com/hook"
    _, called = sdk_records("iris", {"input": [[0.0] * 4]}, callback_url=hook)
    request = decode_request(called[0][1].value)
    assert str(request.callback.url if request.callback else None) == hook
    with pytest.raises(SubmitError, match="model"):
        sdk_records("no such name!", {"input": np.zeros((1, 4))})


def test_metadata_given_as_pairs_reaches_the_models_whole() -> None:
    """An iterator of pairs is not a mapping: the direct path leaves it unread, also when
    the inputs (a list here) send the request through the models."""
    pairs = zip(["a"], [1], strict=True)  # what dict() takes, as callers have passed it
    _, records = sdk_records("iris", {"input": [[0.0] * 4]}, metadata=pairs)
    assert decode_request(records[0][1].value).metadata == {"a": 1}


def test_a_queued_event_writes_nan_as_the_model_writes_it() -> None:
    request = build_request(
        "iris",
        {"input": np.zeros((1, 4))},
        job_id="j-1",
        model_version=None,
        callback_url=None,
        callback_events=None,
        deadline=None,
        metadata={"a": (float("nan"),)},
        parameters=None,
        tenant=None,
        binary=True,
    )
    assert encode_queued(request).value == encode_event(JobEvent.queued(request)).value


@pytest.mark.parametrize("inputs", [{"input": np.zeros((1, 4))}, {"input": [[0.0] * 4]}])
def test_metadata_json_cannot_carry_is_a_submit_error(inputs: dict[str, Any]) -> None:
    with pytest.raises(SubmitError) as caught:
        sdk_records("iris", inputs, metadata={"score": np.float32(0.5)})
    assert str(caught.value) == (
        "the request cannot be written as JSON: "
        "Unable to serialize unknown type: <class 'numpy.float32'>"
    )
