"""The worker's fast result records are what the schema's own encoder would write."""

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
    encode_event,
)
from worker.config import ModelConfig
from worker.jobs import Job
from worker.results import BatchOutputs, succeeded_record
from worker.runtime import LoadedModel

SUBMITTED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
COMPLETED = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
TIMINGS = Timings(queued_ms=1.5, batch_wait_ms=0.25, inference_ms=0.125, batch_size=3)


def model(model_repo: Path) -> LoadedModel:
    return LoadedModel(
        "breast_cancer",
        "1",
        model_repo / "breast_cancer" / "1" / "model.onnx",
        ModelConfig(),
        intra_op_threads=1,
        providers=["CPUExecutionProvider"],
    )


def job(model: LoadedModel, rows: int, binary: bool, index: int = 0) -> Job:
    features = np.ones((rows, 30), np.float32)
    request = InferenceRequest(
        job_id=f"fast-{index}",
        model="breast_cancer",
        submitted_at=SUBMITTED,
        inputs=[Tensor.from_numpy("input", features, binary=binary)],
        metadata={"who": "me", "n": [1, 2]},
    )
    return Job(request, model, {"input": features})


OUTPUTS: dict[str, np.ndarray[Any, Any]] = {
    "label": np.array([1, 0, 1], dtype=np.int64),
    "probabilities": np.array([[0.25, 0.75], [0.5, 0.5], [np.inf, np.nan]], dtype=np.float32),
    "names": np.array(["a", "bb", "ccc"], dtype=object),
    "words": np.array(["x", "yy", "zzz"]),  # numpy's own text dtype
    "flags": np.array([True, False, True]),
    "half": np.array([[0.5, 1.5], [2.5, -0.0], [65504.0, 1e-4]], dtype=np.float16),
    # column-major, as a transposing model may hand it back
    "cube": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 2, 2)),
}


def expected_event(job: Job, outputs: dict[str, np.ndarray[Any, Any]], binary: bool) -> JobEvent:
    return JobEvent(
        job_id=job.request.job_id,
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


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("rows", [[2, 1], [1, 1, 1], [2, 0, 1], [0, 3]])
def test_each_job_of_a_batch_gets_its_rows_as_the_schema_would_encode_them(
    model_repo: Path, binary: bool, rows: list[int]
) -> None:
    jobs = [job(model(model_repo), n, binary, index) for index, n in enumerate(rows)]
    cut = BatchOutputs(OUTPUTS, rows)
    starts = np.cumsum([0, *rows])
    for index, this in enumerate(jobs):
        record = succeeded_record(
            this, cut.tensors(index, binary), TIMINGS.model_dump(), "w-1", COMPLETED
        )
        mine = slice(starts[index], starts[index + 1])
        expected = expected_event(this, {n: v[mine] for n, v in OUTPUTS.items()}, binary)
        reference = encode_event(expected)
        assert record.value == reference.value
        assert (record.key, record.headers) == (reference.key, reference.headers)


@pytest.mark.parametrize("binary", [True, False])
def test_the_only_job_of_a_batch_takes_the_outputs_as_they_are(
    model_repo: Path, binary: bool
) -> None:
    only = job(model(model_repo), 2, binary)
    outputs: dict[str, np.ndarray[Any, Any]] = {
        "total": np.array([[3.0, 4.0]], np.float32),  # one row for the job's two
        "count": np.array(7, np.int64),
    }
    record = succeeded_record(
        only, BatchOutputs(outputs, [2]).tensors(0, binary), TIMINGS.model_dump(), "w-1", COMPLETED
    )
    assert record.value == encode_event(expected_event(only, outputs, binary)).value


def test_outputs_without_a_batch_dimension_cannot_be_cut() -> None:
    with pytest.raises(ValueError, match=r"^output 'count' has no batch dimension: shape \[\]$"):
        BatchOutputs({"count": np.array(7, np.int64)}, [1, 2])
    with pytest.raises(ValueError, match=r"^output 'y' has no batch dimension: shape \[1, 2\]$"):
        BatchOutputs({"y": np.ones((1, 2), np.float32)}, [1, 2])
