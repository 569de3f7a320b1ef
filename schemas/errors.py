"""The error shape every part of inferq reports (a machine code and a human message), and
the one tree of errors inferq raises: permanent or transient."""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class ErrorCode(StrEnum):
    # request content
    INVALID_REQUEST = "invalid_request"
    MALFORMED_RECORD = "malformed_record"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    INVALID_INPUT = "invalid_input"
    # routing
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_VERSION_NOT_FOUND = "model_version_not_found"
    JOB_NOT_FOUND = "job_not_found"
    # execution
    INFERENCE_ERROR = "inference_error"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CANCELLED = "cancelled"
    # admission
    JOB_FINISHED = "job_finished"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BACKLOG_FULL = "backlog_full"
    CALLBACK_REFUSED = "callback_refused"
    JOB_ID_TAKEN = "job_id_taken"
    NO_WEBHOOK = "no_webhook"
    UNAUTHORIZED = "unauthorized"
    # service
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal_error"


class InferqError(Exception):
    """The root of every error inferq raises on purpose; `code` is what a job or an HTTP
    answer reports for it."""

    code: ErrorCode = ErrorCode.INTERNAL
    transient = False


class PermanentError(InferqError):
    """Trying again cannot help (the input, the model, the request is wrong): fail at once."""


class TransientError(InferqError):
    """Trying again later may help (the broker, a model session): retry with backoff, up
    to a limit."""

    transient = True


class ErrorInfo(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [{"code": "job_not_found", "message": "no job with id 'abc'"}]
        },
    )

    code: str
    message: str
