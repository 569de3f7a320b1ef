"""Records the producer or the broker refuses for good are replaced, not resent forever."""

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
)

from inferq.connections import producer_options
from inferq.devbroker import DevBroker
from inferq.outbox import Outbox
from inferq.settings import KafkaSettings
from schemas import (
    Datatype,
    ErrorCode,
    JobEvent,
    JobStatus,
    KafkaRecord,
    Tensor,
    decode_event,
    encode_event,
)
from tests.support import eventually, read_all, unique_prefix
from worker.deadletters import HEADER_VALUE_DROPPED, dead_letter
from worker.delivery import Delivery, _unacknowledged
from worker.offsets import OffsetTracker

LIMIT = 4096  # the largest record the test delivery sends


def result(job_id: str, floats: int) -> KafkaRecord:
    output = Tensor(name="y", datatype=Datatype.FP32, shape=[floats], data=[0.5] * floats)
    event = JobEvent(
        job_id=job_id, status=JobStatus.SUCCEEDED, model="m", outputs=[output], tenant="acme"
    )
    return encode_event(event)


def outbox(producer: AIOKafkaProducer, max_record_bytes: int) -> Outbox:
    return Outbox(
        producer, batch_bytes=64 * 1024, max_record_bytes=max_record_bytes, max_wait_s=1.0
    )


class Fetched:
    """A fetched record, as much of it as `dead_letter` reads."""

    topic = "requests"
    partition = 0
    offset = 7

    def __init__(self, value: bytes) -> None:
        self.headers = [("content-type", b"application/json")]
        self.key = b"undecodable-1"
        self.value = value


async def read(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:

        async def all_there() -> list[Any] | None:
            batch = await consumer.getmany(timeout_ms=100)
            records.extend(r for rs in batch.values() for r in rs)
            return records if len(records) >= count else None

        return await eventually(all_there)
    finally:
        await consumer.stop()


async def test_a_refused_result_becomes_a_failed_result_and_a_dead_letter_loses_its_value(
    broker: DevBroker,
) -> None:
    prefix = unique_prefix()
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix)
    results, dlq = settings.topics.results, settings.topics.dlq
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    tracker = OffsetTracker()
    tracker.started(0, 7)
    try:
        delivery = Delivery(outbox(producer, LIMIT), 8, tracker)
        letter = dead_letter(Fetched(b"x" * 2 * LIMIT), "malformed_record", "not JSON")
        outgoing = [
            (results, result("small", 4)),
            (results, result("large", 2 * LIMIT)),
            (dlq, letter),
        ]
        await delivery.send(outgoing, [(0, 7)])
        await delivery.drain()
    finally:
        await producer.stop()
    assert tracker.committable() == {0: 8}  # the record's outcome is out: it may be committed

    stored = await read_all(broker.bootstrap_servers, results, 2)
    assert sorted(key for _, key in stored) == [b"large", b"small"]  # each once: no resend
    events = {
        e.job_id: e
        for e in (decode_event(r.value) for r in await read(broker.bootstrap_servers, results, 2))
    }
    assert events["small"].status is JobStatus.SUCCEEDED
    large = events["large"]
    assert (large.status, large.outputs, large.model, large.tenant) == (
        JobStatus.FAILED,
        None,
        "m",
        "acme",
    )
    assert large.error is not None
    assert large.error.code == ErrorCode.PAYLOAD_TOO_LARGE
    assert large.error.message.startswith("the broker refused the result: ")
    assert "max_request_size" in large.error.message

    (kept,) = await read(broker.bootstrap_servers, dlq, 1)
    headers = dict(kept.headers)
    assert (kept.key, kept.value) == (b"undecodable-1", b"")
    assert headers["inferq-error-code"] == b"malformed_record"
    assert headers[HEADER_VALUE_DROPPED].startswith(b"the broker refused the dead letter: ")


def test_only_unacknowledged_records_go_again_and_refused_ones_are_replaced() -> None:
    done = result("done", 1)
    passing = result("passing", 1)
    large = result("large", 1)
    failed = encode_event(JobEvent(job_id="failed", status=JobStatus.FAILED))
    running = encode_event(JobEvent(job_id="running", status=JobStatus.RUNNING))
    outgoing = [("r", done), ("r", passing), ("r", large), ("r", failed), ("r", running)]
    away = KafkaConnectionError("broker away")
    too_large = MessageSizeTooLargeError("too large")
    answers = [object(), away, too_large, too_large, too_large]
    again, error = _unacknowledged(outgoing, answers)
    assert error is too_large
    assert [topic for topic, _ in again] == ["r", "r"]
    assert again[0][1] is passing  # a passing error: the same record again
    instead = decode_event(again[1][1].value)  # the large result's replacement
    assert (instead.job_id, instead.status) == ("large", JobStatus.FAILED)
    # a failed or a running event refused for its size is given up: nothing says less
