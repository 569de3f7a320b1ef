"""The worker's fast result records decode to what the schema's own encoder would write."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas import (
    InferenceRequest,
    JobEvent,
    JobStatus,
    Tensor,
    Timings,
    decode_event,
    encode_event,
)
from worker.config import ModelConfig
from worker.jobs import Job
from worker.results import succeeded_record
from worker.runtime import LoadedModel

SUBMITTED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
COMPLETED = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
TIMINGS = Timings(queued_ms=1.5, batch_wait_ms=0.25, inference_ms=0.125, batch_size=3)


@pytest.mark.parametrize("binary", [True, False])
def test_fast_record_equals_the_schema_encoding(model_repo: Path, binary: bool) -> None:
    model = LoadedModel(
        "breast_cancer",
        "1",
        model_repo / "breast_cancer" / "1" / "model.onnx",
        ModelConfig(),
        intra_op_threads=1,
        providers=["CPUExecutionProvider"],
    )
    features = np.ones((2, 30), np.float32)
    request = InferenceRequest(
        job_id="fast-1",
        model="breast_cancer",
        submitted_at=SUBMITTED,
        inputs=[Tensor.from_numpy("input", features, binary=binary)],
        metadata={"who": "me", "n": [1, 2]},
    )
    outputs: dict[str, np.ndarray[Any, Any]] = {
        "label": np.array([1, 0], dtype=np.int64),
        "probabilities": np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32),
        "names": np.array(["a", "b"], dtype=object),
    }
    record = succeeded_record(
        Job(request, model, {"input": features}), outputs, TIMINGS.model_dump(), "w-1", COMPLETED
    )
    expected = JobEvent(
        job_id="fast-1",
        status=JobStatus.SUCCEEDED,
        model="breast_cancer",
        model_version="1",
        outputs=[Tensor.from_numpy(n, v, binary=binary) for n, v in outputs.items()],
        timings=TIMINGS,
        worker="w-1",
        submitted_at=SUBMITTED,
        completed_at=COMPLETED,
        metadata={"who": "me", "n": [1, 2]},
    )
    reference = encode_event(expected)
    assert decode_event(record.value, record.headers) == expected
    assert (record.key, record.headers) == (reference.key, reference.headers)
