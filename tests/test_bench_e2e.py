"""bench/e2e.py's reader of the results topic skips `queued` events without parsing them."""

from typing import NamedTuple

import numpy as np
import pytest

from bench.e2e import queued
from schemas import InferenceRequest, JobEvent, JobStatus, KafkaRecord, Tensor, encode_event
from schemas.codec import encode_queued


class Record(NamedTuple):
    key: bytes
    value: bytes


def record(encoded: KafkaRecord) -> Record:
    return Record(encoded.key, encoded.value)


@pytest.mark.parametrize(
    ("model_version", "tenant", "metadata"),
    [(None, None, {}), ("2", "team-a", {}), (None, None, {"status": "succeeded"})],
)
def test_queued_events_are_told_from_the_others(
    model_version: str | None, tenant: str | None, metadata: dict[str, str]
) -> None:
    request = InferenceRequest(
        model="iris",
        model_version=model_version,
        tenant=tenant,
        metadata=metadata,
        inputs=[Tensor.from_numpy("x", np.zeros((1, 2), np.float32))],
    )
    assert queued(record(encode_queued(request)))
    for status in (JobStatus.RUNNING, JobStatus.CANCELLED):
        assert not queued(record(encode_event(JobEvent.of_request(request, status))))


def test_a_later_event_that_echoes_queued_in_its_metadata_is_not_skipped() -> None:
    request = InferenceRequest(
        model="iris",
        inputs=[Tensor.from_numpy("x", np.zeros((1, 2), np.float32))],
        metadata={"status": "queued"},
    )
    assert not queued(record(encode_event(JobEvent.of_request(request, JobStatus.SUCCEEDED))))
