"""Client options built from the settings."""

import pytest
from pydantic import ValidationError

from inferq.connections import producer_options
from inferq.settings import KafkaSettings
from producer import ProducerSettings


def test_producer_batches_default_to_256_kib_and_follow_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INFERQ_PRODUCER_BATCH_BYTES", raising=False)
    assert producer_options(KafkaSettings())["max_batch_size"] == 256 * 1024
    monkeypatch.setenv("INFERQ_PRODUCER_BATCH_BYTES", "65536")
    assert producer_options(KafkaSettings())["max_batch_size"] == 65536
    assert ProducerSettings().producer_batch_bytes == 65536


@pytest.mark.parametrize("size", [1023, 1024 * 1024 + 1])
def test_producer_batch_bytes_out_of_range_are_refused(size: int) -> None:
    with pytest.raises(ValidationError, match="producer_batch_bytes"):
        KafkaSettings(producer_batch_bytes=size)
