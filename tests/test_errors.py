"""The error tree: what is permanent fails a job at once, what is transient is retried."""

import pytest

from inferq.retry import Backoff
from producer import BrokerUnavailable, PayloadTooLarge, SubmitError
from schemas import DecodeError, ErrorCode, TensorError, decode_request
from schemas.errors import InferqError, PermanentError, TransientError
from worker.repository import ModelNotFound, VersionNotFound
from worker.runtime import InferenceFailed, InputError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TensorError("t"), ErrorCode.INVALID_INPUT),
        (InputError("i"), ErrorCode.INVALID_INPUT),
        (DecodeError(ErrorCode.MALFORMED_RECORD, "m"), ErrorCode.MALFORMED_RECORD),
        (ModelNotFound("m"), ErrorCode.MODEL_NOT_FOUND),
        (VersionNotFound("v"), ErrorCode.MODEL_VERSION_NOT_FOUND),
        (SubmitError("s"), ErrorCode.INVALID_REQUEST),
        (PayloadTooLarge("p"), ErrorCode.PAYLOAD_TOO_LARGE),
    ],
)
def test_permanent_errors(error: InferqError, code: ErrorCode) -> None:
    assert isinstance(error, PermanentError)
    assert not error.transient
    assert error.code == code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BrokerUnavailable("b"), ErrorCode.UNAVAILABLE),
        (InferenceFailed("f"), ErrorCode.INFERENCE_ERROR),
    ],
)
def test_transient_errors(error: InferqError, code: ErrorCode) -> None:
    assert isinstance(error, TransientError)
    assert error.transient
    assert error.code == code


def test_backoff_doubles_up_to_its_cap_with_jitter_and_stops_at_its_limit() -> None:
    pauses = list(Backoff(first_s=0.1, max_s=0.3, retries=4).pauses())
    assert len(pauses) == 4
    for pause, (low, high) in zip(
        pauses, [(0.05, 0.1), (0.1, 0.2), (0.15, 0.3), (0.15, 0.3)], strict=True
    ):
        assert low <= pause <= high


def test_backoff_without_a_limit_goes_on() -> None:
    pauses = Backoff(first_s=1.0, max_s=2.0).pauses()
    assert all(0.5 <= next(pauses) <= 2.0 for _ in range(100))


def test_a_schema_version_that_is_no_number_is_an_invalid_body_not_another_version() -> None:
    with pytest.raises(DecodeError) as refused:
        decode_request(b'{"schema_version": "one", "model": "m"}')
    assert refused.value.code == ErrorCode.INVALID_REQUEST
    with pytest.raises(DecodeError) as other:
        decode_request(b'{"schema_version": 2, "model": "m"}')
    assert other.value.code == ErrorCode.UNSUPPORTED_SCHEMA_VERSION
    assert str(other.value) == "schema version 2 is not supported; this build reads version 1"
