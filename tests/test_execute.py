"""The worker without Kafka: repository, model config, record -> job, batching and execution."""

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper

from inferq.demo_models import dataset
from inferq.retry import Backoff
from schemas import (
    Datatype,
    ErrorCode,
    ErrorInfo,
    InferenceRequest,
    JobEvent,
    JobStatus,
    Tensor,
    decode_event,
)
from schemas import encode_request as encode
from worker.batcher import Batcher
from worker.config import Clamp, ConfigError, ModelConfig
from worker.execute import ONCE, run_batch
from worker.jobs import Job, Rejected, prepare
from worker.repository import ModelNotFound, ModelRepository, VersionNotFound, list_models
from worker.results import record_bytes
from worker.runtime import InputError, LoadedModel

Array = npt.NDArray[Any]
CPU = ["CPUExecutionProvider"]
BC, DIA = dataset("breast_cancer")[0], dataset("diabetes")[0]


def load(root: Path, *models: str) -> ModelRepository:
    return ModelRepository(root, list(models), intra_op_threads=1, providers=CPU)


def loaded(path: Path, config: ModelConfig, name: str = "m") -> LoadedModel:
    return LoadedModel(name, "1", path, config, intra_op_threads=1, providers=CPU)


def request(model: str, arrays: dict[str, Array], **fields: Any) -> InferenceRequest:
    inputs = [Tensor.from_numpy(name, a) for name, a in arrays.items()]
    return InferenceRequest(model=model, inputs=inputs, **fields)


def job(model: LoadedModel, **arrays: Array) -> Job:
    return Job(request(model.name, arrays), model, dict(arrays))


def write_onnx(root: Path, node: Any, inputs: list[Any], outputs: list[Any], *init: Any) -> None:
    graph = helper.make_graph([node], "toy", inputs, outputs, initializer=list(init))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    (root / "1").mkdir(parents=True)
    (root / "1" / "model.onnx").write_bytes(model.SerializeToString())


def fp32(name: str, shape: list[Any]) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


@pytest.fixture(scope="module")
def demo(model_repo: Path) -> ModelRepository:
    return load(model_repo, "breast_cancer", "diabetes")


@pytest.fixture(scope="module")
def toys(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    """double: y = x + x over [N, ?]; fixed: the same over [2, 2] (no batch dimension);
    gather: a lookup that fails for an index out of range; total: column sums, shape [1, 2];
    pair: a + b over [N, 2] each."""
    root = tmp_path_factory.mktemp("toys")
    add = helper.make_node("Add", ["x", "x"], ["y"])
    write_onnx(root / "double", add, [fp32("x", ["N", None])], [fp32("y", ["N", None])])
    write_onnx(root / "fixed", add, [fp32("x", [2, 2])], [fp32("y", [2, 2])])
    idx = helper.make_tensor_value_info("idx", TensorProto.INT64, ["N"])
    table = helper.make_tensor("table", TensorProto.FLOAT, [3], [10.0, 20.0, 30.0])
    gather = helper.make_node("Gather", ["table", "idx"], ["value"], axis=0)
    write_onnx(root / "gather", gather, [idx], [fp32("value", ["N"])], table)
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [0])
    reduce = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)
    write_onnx(root / "total", reduce, [fp32("x", ["N", 2])], [fp32("y", [1, 2])], axes)
    pair = helper.make_node("Add", ["a", "b"], ["y"])
    write_onnx(
        root / "pair", pair, [fp32("a", ["N", 2]), fp32("b", ["N", 2])], [fp32("y", ["N", 2])]
    )
    return load(root, "double", "fixed", "gather", "total", "pair")


@pytest.fixture
def versioned(model_repo: Path, tmp_path: Path) -> Path:
    for version in ("1", "2", "10"):  # ordered as numbers: 10 is the highest
        shutil.copytree(model_repo / "breast_cancer" / "1", tmp_path / "breast_cancer" / version)
    (tmp_path / "breast_cancer" / "3").mkdir()  # no model.onnx: not a version
    (tmp_path / "breast_cancer" / "latest").mkdir()
    # a digit to str.isdigit, not to int(): not a version either
    shutil.copytree(model_repo / "breast_cancer" / "1", tmp_path / "breast_cancer" / "\u00b2")
    (tmp_path / "empty").mkdir()
    return tmp_path


def test_list_models(model_repo: Path, versioned: Path) -> None:
    assert list_models(model_repo) == ["breast_cancer", "diabetes"]
    assert list_models(versioned) == ["breast_cancer"]
    assert list_models(versioned / "missing") == []


def test_highest_version_by_default(versioned: Path) -> None:
    repo = load(versioned, "breast_cancer")
    assert repo.models == ["breast_cancer"]
    assert [repo.get("breast_cancer", v).version for v in (None, "1", "2")] == ["10", "1", "2"]
    record = encode(request("breast_cancer", {"input": BC[:1]}, model_version="1"))
    prepared = prepare(record.key, record.value, record.headers, repo, worker="w")
    assert isinstance(prepared, Job)
    assert prepared.model.version == "1"
    with pytest.raises(VersionNotFound) as caught:
        repo.get("breast_cancer", "3")
    served = "served versions: 1, 2, 10"
    assert str(caught.value) == f"model 'breast_cancer' has no version '3'; {served}"
    with pytest.raises(ModelNotFound) as missing:
        repo.get("diabetes")
    assert str(missing.value) == "model 'diabetes' is not served by this worker"


def test_a_model_without_versions_is_not_found(versioned: Path) -> None:
    with pytest.raises(ModelNotFound) as caught:
        load(versioned, "empty")
    assert str(caught.value) == f"no model.onnx under {versioned / 'empty'}/<version>/"


def test_model_config(model_repo: Path) -> None:
    assert ModelConfig.load(model_repo / "breast_cancer") == ModelConfig()
    assert ModelConfig.load(model_repo / "diabetes") == ModelConfig(
        postprocess=[Clamp(op="clamp", output="variable", min=0.0)]
    )


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ('{"max_batch_size": 0}', "greater than or equal to 1"),
        ('{"batch": 4}', "Extra inputs are not permitted"),
        ('{"postprocess": [{"op": "scale", "output": "y"}]}', "does not match any of the expected"),
        ("{", "Invalid JSON"),
    ],
)
def test_invalid_config(tmp_path: Path, text: str, detail: str) -> None:
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ConfigError) as caught:
        ModelConfig.load(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'config.json'}: 1 validation error")
    assert detail in str(caught.value)


def test_diabetes_predictions_are_clamped_at_zero(model_repo: Path, demo: ModelRepository) -> None:
    x = np.array([np.full(10, -0.2), np.full(10, 0.2)], dtype=np.float32)
    raw = loaded(model_repo / "diabetes" / "1" / "model.onnx", ModelConfig()).run({"input": x})
    assert raw["variable"][0, 0] < 0 < raw["variable"][1, 0]  # the inputs do reach below zero
    clamped = demo.get("diabetes").run({"input": x})
    assert clamped["variable"].tolist() == [[0.0], raw["variable"][1].tolist()]


def test_prepare_a_valid_record(demo: ModelRepository) -> None:
    record = encode(request("breast_cancer", {"input": BC[:2]}, job_id="ok-1"))
    prepared = prepare(record.key, record.value, record.headers, demo, worker="w")
    assert isinstance(prepared, Job)
    assert prepared.request.job_id == "ok-1"
    assert (prepared.model.name, prepared.model.version) == ("breast_cancer", "1")
    assert prepared.rows == 2
    assert np.array_equal(prepared.arrays["input"], BC[:2])


@pytest.mark.parametrize("key", [b"job-7", None, b"", b"not a job id"])
def test_prepare_a_malformed_record(demo: ModelRepository, key: bytes | None) -> None:
    prepared = prepare(key, b"{oops", None, demo, worker="w")
    assert isinstance(prepared, Rejected)
    assert prepared.code is ErrorCode.MALFORMED_RECORD
    assert (prepared.message, prepared.undecodable) == ("record value is not valid JSON", True)
    if key != b"job-7":
        assert prepared.event is None
        return
    assert prepared.event is not None
    error = ErrorInfo(code="malformed_record", message=prepared.message)
    expected = JobEvent(job_id="job-7", status=JobStatus.FAILED, error=error, worker="w")
    assert prepared.event.model_copy(update={"completed_at": None}) == expected


def test_the_failed_result_of_an_undecodable_request_keeps_its_tenant(
    demo: ModelRepository,
) -> None:
    """With API keys on, a job's result is readable by its tenant only: a failed result
    without the tenant would hide the job from its owner for good."""
    record = encode(request("breast_cancer", {"input": BC[:1]}, job_id="t-1", tenant="acme"))
    newer = [(name, b"99" if name == "inferq-schema-version" else v) for name, v in record.headers]
    prepared = prepare(record.key, record.value, newer, demo, worker="w")
    assert isinstance(prepared, Rejected)
    assert prepared.code is ErrorCode.UNSUPPORTED_SCHEMA_VERSION
    assert prepared.event is not None
    assert (prepared.event.job_id, prepared.event.tenant) == ("t-1", "acme")
    for value in (b"{oops", b'{"tenant": "no spaces allowed"}', b'["acme"]'):
        prepared = prepare(b"t-2", value, None, demo, worker="w")
        assert isinstance(prepared, Rejected)
        assert prepared.event is not None
        assert prepared.event.tenant is None


T = Tensor.from_numpy
SHORT = Tensor(name="input", datatype=Datatype.FP32, shape=[1, 30], data=BC[0, :29].tolist())
BC64 = BC[:1].astype(np.float64)
BAD_NAME = (
    "model breast_cancer version 1 takes inputs 'input' FP32 [?, 30]; "
    "missing ['input'], unexpected ['x']"
)
NO_VERSION = "model 'diabetes' has no version '4'; served versions: 1"
REJECTS = [
    ("nope", None, "model_not_found", "model 'nope' is not served by this worker"),
    ("diabetes", "4", "model_version_not_found", NO_VERSION),
]
BAD_INPUTS = [
    ([SHORT], "tensor 'input': shape [1, 30] needs 30 elements, data has 29"),
    ([T("input", BC[:1, :29])], "input 'input' expects FP32 [?, 30], got FP32 [1, 29]"),
    ([T("input", BC64)], "input 'input' expects FP32 [?, 30], got FP64 [1, 30]"),
    ([T("x", BC[:1])], BAD_NAME),
    ([T("input", BC[:1]), T("input", BC[1:2])], "input names must be unique"),
]


def rejected(
    repo: ModelRepository, model: str, version: str | None, inputs: list[Tensor], code: str
) -> Rejected:
    req = InferenceRequest(job_id="j1", model=model, model_version=version, inputs=inputs)
    record = encode(req)
    prepared = prepare(record.key, record.value, record.headers, repo, worker="w")
    assert isinstance(prepared, Rejected)
    assert prepared.event is not None
    assert prepared.event.model_copy(update={"completed_at": None}) == JobEvent(
        job_id="j1",
        status=JobStatus.FAILED,
        model=model,
        model_version=version,
        error=ErrorInfo(code=code, message=prepared.message),
        worker="w",
        submitted_at=req.submitted_at,
    )
    assert (prepared.code, prepared.undecodable) == (code, False)
    return prepared


@pytest.mark.parametrize(("model", "version", "code", "message"), REJECTS)
def test_prepare_unknown_model_or_version(
    demo: ModelRepository, model: str, version: str | None, code: str, message: str
) -> None:
    assert rejected(demo, model, version, [T("input", DIA[:1])], code).message == message


@pytest.mark.parametrize(("inputs", "message"), BAD_INPUTS)
def test_prepare_invalid_input(demo: ModelRepository, inputs: list[Tensor], message: str) -> None:
    assert rejected(demo, "breast_cancer", None, inputs, "invalid_input").message == message


def rows(groups: list[list[Job]]) -> list[list[int]]:
    return [[j.rows for j in group] for group in groups]


def events_of(jobs: list[Job], worker: str) -> list[JobEvent]:
    """Run a batch and read back the result records it makes."""
    return [decode_event(record.value) for record in run_batch(jobs, worker)]


async def batches(jobs: list[Job], max_batch_size: int) -> list[list[Job]]:
    """What a batcher makes of `jobs` put at once, with no batch closed by its wait."""
    batcher: Batcher[Job] = Batcher(max_batch_size, max_wait_ms=60_000, capacity=len(jobs))
    for j in jobs:
        await batcher.put(j)
    await batcher.close()
    made = []
    while (batch := await batcher.get()) is not None:
        made.append(batch)
    return made


async def test_compatible_jobs_share_a_batch(demo: ModelRepository) -> None:
    jobs = [job(demo.get("breast_cancer"), input=BC[i : i + 1]) for i in range(3)]
    assert (await batches(jobs, 8)) == [jobs]


async def test_batches_respect_max_batch_size(demo: ModelRepository, model_repo: Path) -> None:
    bc = demo.get("breast_cancer")
    jobs = [job(bc, input=BC[:n]) for n in (2, 2, 2, 2, 1, 5)]
    assert rows(await batches(jobs, 4)) == [[2, 2], [2, 2], [1], [5]]  # a big job runs alone
    small = loaded(model_repo / "breast_cancer" / "1" / "model.onnx", ModelConfig(max_batch_size=3))
    jobs = [job(small, input=BC[:1]) for _ in range(7)]
    assert rows(await batches(jobs, 100)) == [[1, 1, 1], [1, 1, 1], [1]]


async def test_batches_separate_models_and_shapes(
    demo: ModelRepository, toys: ModelRepository
) -> None:
    bc, dia = demo.get("breast_cancer"), demo.get("diabetes")
    b1, d1 = job(bc, input=BC[:1]), job(dia, input=DIA[:1])
    b2, d2 = job(bc, input=BC[1:3]), job(dia, input=DIA[1:2])
    assert (await batches([b1, d1, b2, d2], 8)) == [[b1, b2], [d1, d2]]
    double, fixed = toys.get("double"), toys.get("fixed")
    narrow, wide = (job(double, x=np.ones((1, n), np.float32)) for n in (2, 3))
    narrow2 = job(double, x=np.zeros((2, 2), np.float32))
    assert (await batches([narrow, wide, narrow2], 8)) == [[narrow, narrow2], [wide]]
    f1, f2 = (job(fixed, x=np.ones((2, 2), np.float32)) for _ in range(2))
    assert (await batches([f1, f2], 8)) == [[f1], [f2]]


def outputs(event: JobEvent) -> dict[str, Array]:
    return {t.name: t.to_numpy() for t in event.outputs or []}


@pytest.mark.parametrize(("model", "data"), [("breast_cancer", BC), ("diabetes", DIA)])
def test_run_batch_matches_running_each_job_alone(
    demo: ModelRepository, model: str, data: Array
) -> None:
    jobs = [job(demo.get(model), input=data[a:b]) for a, b in ((0, 1), (1, 3), (3, 6))]
    events = events_of(jobs, "w")
    assert [e.job_id for e in events] == [j.request.job_id for j in jobs]
    for j, event in zip(jobs, events, strict=True):
        (alone,) = events_of([j], "w")
        assert event.status is JobStatus.SUCCEEDED
        assert (event.model, event.model_version, event.worker) == (model, "1", "w")
        assert event.timings is not None
        assert alone.timings is not None
        assert (event.timings.batch_size, alone.timings.batch_size) == (3, 1)
        got, want = outputs(event), outputs(alone)
        assert list(got) == list(want) == demo.get(model).output_names
        for name in want:
            assert got[name].shape[0] == j.rows
            # the same to float32 precision: a batch may take another kernel path
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6)


async def test_a_failing_job_does_not_fail_its_batch(toys: ModelRepository) -> None:
    gather = toys.get("gather")
    jobs = [job(gather, idx=np.array([i], dtype=np.int64)) for i in (0, 5, 2)]
    assert (await batches(jobs, 8)) == [jobs]
    good1, bad, good2 = events_of(jobs, "w")
    assert [good1.status, bad.status, good2.status] == ["succeeded", "failed", "succeeded"]
    assert (outputs(good1)["value"].tolist(), outputs(good2)["value"].tolist()) == ([10.0], [30.0])
    assert good1.timings is not None
    assert good1.timings.batch_size == 1
    assert bad.error is not None
    assert bad.error.code == "inference_error"
    assert bad.error.message.startswith("model gather failed: [ONNXRuntimeError]")
    assert "indices element out of data bounds" in bad.error.message


def test_outputs_without_a_batch_dimension_run_job_by_job(toys: ModelRepository) -> None:
    total = toys.get("total")
    a, b = job(total, x=np.ones((1, 2), np.float32)), job(total, x=np.ones((3, 2), np.float32))
    events = events_of([a, b], "w")
    assert [outputs(e)["y"].tolist() for e in events] == [[[1.0, 1.0]], [[3.0, 3.0]]]
    assert [e.timings.batch_size if e.timings else None for e in events] == [1, 1]


def test_a_batch_onnx_runtime_fails_is_tried_again_then_job_by_job(
    toys: ModelRepository, caplog: pytest.LogCaptureFixture
) -> None:
    gather = toys.get("gather")
    jobs = [job(gather, idx=np.array([i], dtype=np.int64)) for i in (0, 5)]
    with caplog.at_level("WARNING", logger="worker.execute"):
        records = run_batch(jobs, "w", Backoff(first_s=0.0, max_s=0.0, retries=2))
    good, bad = (decode_event(r.value, r.headers) for r in records)
    assert [good.status, bad.status] == ["succeeded", "failed"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("batch of 2 failed" in m and "again in" in m for m in messages) == 2
    assert sum("running its jobs one by one" in m for m in messages) == 1


def test_a_result_over_the_limit_fails_its_job_alone(demo: ModelRepository) -> None:
    model = demo.get("breast_cancer")
    small, large = job(model, input=BC[:1]), job(model, input=BC[:200])
    limit = 2048
    (small_alone,) = run_batch([small], "w")
    (large_alone,) = run_batch([large], "w")
    assert record_bytes(small_alone) < limit - 100 < limit + 100 < record_bytes(large_alone)
    kept, refused = (decode_event(r.value) for r in run_batch([small, large], "w", ONCE, limit))
    assert kept.status is JobStatus.SUCCEEDED
    assert outputs(kept).keys() == {"label", "probabilities"}
    assert refused.status is JobStatus.FAILED
    assert (refused.job_id, refused.model_version, refused.outputs) == (
        large.request.job_id,
        "1",
        None,
    )
    assert refused.error is not None
    assert refused.error.code == ErrorCode.PAYLOAD_TOO_LARGE
    stated = re.fullmatch(
        r"the result is (\d+) bytes encoded, over the limit of 2048 bytes "
        r"\(INFERQ_MAX_RESULT_BYTES\): send fewer rows per job, or raise the limit with the "
        r"broker's message\.max\.bytes",
        refused.error.message,
    )
    assert stated is not None, refused.error.message
    assert abs(int(stated.group(1)) - record_bytes(large_alone)) < 100  # timings differ a little


def test_a_broken_config_holds_back_new_versions_and_serving_goes_on(
    model_repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copytree(model_repo / "diabetes", tmp_path / "diabetes")
    repo = load(tmp_path, "diabetes")
    shutil.copytree(tmp_path / "diabetes" / "1", tmp_path / "diabetes" / "2")
    (tmp_path / "diabetes" / "config.json").write_text('{"max_batch_size": ')  # half-written
    with caplog.at_level("ERROR", logger="worker.repository"):
        assert repo.refresh() == []
    assert repo.versions("diabetes") == ["1"]
    assert repo.get("diabetes").version == "1"
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("cannot load diabetes versions 2: ")
    assert "config.json" in message
    (tmp_path / "diabetes" / "config.json").write_text('{"max_batch_size": 16}')
    assert repo.refresh() == ["diabetes/2"]
    assert repo.get("diabetes").config.max_batch_size == 16


def test_non_finite_outputs_are_spelled_in_json_results(toys: ModelRepository) -> None:
    x = np.array([[np.inf, np.nan, -np.inf, 1.5]], np.float32)
    (event,) = events_of([job(toys.get("double"), x=x)], "w")
    (y,) = event.outputs or []
    assert y.data == ["Infinity", "NaN", "-Infinity", 3.0]
    np.testing.assert_array_equal(y.to_numpy(), x + x)  # NaN equals NaN here


def test_the_inputs_of_a_job_must_have_as_many_rows_each(toys: ModelRepository) -> None:
    """A batch joins each input of its jobs on its own: a job with one row of `a` and two
    of `b` would hand its second `b` row to the next job in the batch."""
    pair = toys.get("pair")
    one, two = np.zeros((1, 2), np.float32), np.zeros((2, 2), np.float32)
    pair.validate({"a": two, "b": two})
    with pytest.raises(InputError) as raised:
        pair.validate({"a": one, "b": two})
    assert str(raised.value) == (
        "the inputs of a job must have the same number of rows (first dimension): 'a' 1, 'b' 2"
    )
    assert raised.value.code == ErrorCode.INVALID_INPUT
    with pytest.raises(InputError, match=r"missing \['b'\], unexpected \['c'\]$"):
        pair.validate({"a": one, "c": two})  # the names are said first


def test_a_repository_that_cannot_be_listed_keeps_serving(
    versioned: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    repo = load(versioned, "breast_cancer")

    def vanished(model_dir: Path) -> list[str]:
        raise FileNotFoundError(f"[Errno 2] No such file or directory: '{model_dir}'")

    monkeypatch.setattr("worker.repository.versions_in", vanished)
    with caplog.at_level("ERROR", logger="worker.repository"):
        assert repo.refresh() == []
    assert repo.versions("breast_cancer") == ["1", "2", "10"]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("cannot list the versions of breast_cancer: [Errno 2]")
