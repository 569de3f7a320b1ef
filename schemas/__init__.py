"""Message contracts shared by every part of inferq: requests, results, job status, tensors."""

from schemas.codec import (
    CONTENT_TYPE_JSON,
    HEADER_CONTENT_TYPE,
    HEADER_SCHEMA_VERSION,
    DecodeError,
    KafkaRecord,
    decode_cancel,
    decode_event,
    decode_event_head,
    decode_request,
    encode_cancel,
    encode_event,
    encode_request,
)
from schemas.errors import ErrorCode, ErrorInfo
from schemas.messages import (
    SCHEMA_VERSION,
    Callback,
    CancelRequest,
    EventHead,
    InferenceRequest,
    JobEvent,
    Timings,
    new_job_id,
    utcnow,
)
from schemas.status import TERMINAL_STATUSES, JobStatus, supersedes
from schemas.tensors import Datatype, Tensor, TensorError

__all__ = [
    "CONTENT_TYPE_JSON",
    "HEADER_CONTENT_TYPE",
    "HEADER_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "TERMINAL_STATUSES",
    "Callback",
    "CancelRequest",
    "Datatype",
    "DecodeError",
    "ErrorCode",
    "ErrorInfo",
    "EventHead",
    "InferenceRequest",
    "JobEvent",
    "JobStatus",
    "KafkaRecord",
    "Tensor",
    "TensorError",
    "Timings",
    "decode_cancel",
    "decode_event",
    "decode_event_head",
    "decode_request",
    "encode_cancel",
    "encode_event",
    "encode_request",
    "new_job_id",
    "supersedes",
    "utcnow",
]
