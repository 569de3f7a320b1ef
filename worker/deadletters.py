"""Dead letters: a record that cannot be decoded, kept on `<prefix>.dlq` with the reason and
its origin in headers."""

from typing import Any

from schemas.codec import Headers, KafkaRecord

HEADER_ERROR_CODE = "inferq-error-code"
HEADER_ERROR = "inferq-error"
HEADER_ORIGIN_TOPIC = "inferq-origin-topic"
HEADER_ORIGIN_PARTITION = "inferq-origin-partition"
HEADER_ORIGIN_OFFSET = "inferq-origin-offset"
# set when the broker refused the dead letter whole: it was sent again without its value
HEADER_VALUE_DROPPED = "inferq-value-dropped"


def dead_letter(record: Any, code: str, message: str) -> KafkaRecord:
    """The record untouched, with the reason and its origin added to its headers."""
    headers: Headers = [
        *(record.headers or ()),
        (HEADER_ERROR_CODE, code.encode()),
        (HEADER_ERROR, message.encode()),
        (HEADER_ORIGIN_TOPIC, str(record.topic).encode()),
        (HEADER_ORIGIN_PARTITION, str(record.partition).encode()),
        (HEADER_ORIGIN_OFFSET, str(record.offset).encode()),
    ]
    return KafkaRecord(record.key or b"", record.value or b"", headers)
