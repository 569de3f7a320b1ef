"""What a worker sends instead of a record the broker (or the producer) refuses for good.

Most send errors pass (a broker away, a leader moving) and the record is sent again. A
record refused for its size would be refused forever: resending
it would hold its job's offset back for good. It is replaced once by a small record that
says why: a succeeded result by a `failed` result of the same job, a dead letter by the
same dead letter without its value. Anything else refused so, or a replacement refused
too, is given up (logged).
"""

from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from schemas import DecodeError, ErrorCode, ErrorInfo, JobStatus, KafkaRecord, decode_event
from schemas.codec import encode_event
from worker.deadletters import HEADER_ERROR_CODE, HEADER_VALUE_DROPPED

# Refusals of one record for its size: the outbox puts a record that would take a batch
# past INFERQ_PRODUCER_BATCH_BYTES, which must stay under the broker's limit, in a batch
# of its own. (A CRC failure or a policy violation is told of a whole batch, good records
# with it, and may pass: those are sent again.)
PERMANENT = (MessageSizeTooLargeError, RecordListTooLargeError)


def is_permanent(error: KafkaError) -> bool:
    return isinstance(error, PERMANENT)


def replacement(record: KafkaRecord, error: KafkaError) -> KafkaRecord | None:
    """The record to send instead of `record`, or None to give it up."""
    names = {name for name, _ in record.headers}
    if HEADER_ERROR_CODE in names:  # a dead letter
        if HEADER_VALUE_DROPPED in names:
            return None
        reason = f"the broker refused the dead letter: {error}".encode()
        return KafkaRecord(record.key, b"", [*record.headers, (HEADER_VALUE_DROPPED, reason)])
    try:
        event = decode_event(record.value, record.headers)
    except DecodeError:
        return None
    if event.status is not JobStatus.SUCCEEDED:
        # Only outputs make a result large; and any other event turned `failed` would end
        # a job that is running, or cancelled, as failed.
        return None
    failed = event.model_copy(
        update={
            "status": JobStatus.FAILED,
            "outputs": None,
            "timings": None,
            "error": ErrorInfo(
                code=ErrorCode.PAYLOAD_TOO_LARGE,
                message=f"the broker refused the result: {error}",
            ),
        }
    )
    return encode_event(failed)
