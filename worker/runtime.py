"""One loaded model version: an ONNX Runtime session, its input contract and post-processing."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from schemas.errors import ErrorCode, PermanentError, TransientError
from schemas.tensors import Datatype
from worker.config import ConfigError, ModelConfig

log = logging.getLogger(__name__)

Arrays = dict[str, npt.NDArray[Any]]

_ORT_TYPES: dict[str, Datatype] = {
    "tensor(bool)": Datatype.BOOL,
    "tensor(int8)": Datatype.INT8,
    "tensor(int16)": Datatype.INT16,
    "tensor(int32)": Datatype.INT32,
    "tensor(int64)": Datatype.INT64,
    "tensor(uint8)": Datatype.UINT8,
    "tensor(uint16)": Datatype.UINT16,
    "tensor(uint32)": Datatype.UINT32,
    "tensor(uint64)": Datatype.UINT64,
    "tensor(float16)": Datatype.FP16,
    "tensor(float)": Datatype.FP32,
    "tensor(double)": Datatype.FP64,
    "tensor(string)": Datatype.BYTES,
}


_MAX_LAYOUTS = 1024  # input layouts (names, dtypes, trailing dims) remembered as valid


class InputError(PermanentError, ValueError):
    """Inputs that do not fit the model's signature."""

    code = ErrorCode.INVALID_INPUT


class InferenceFailed(TransientError):
    """ONNX Runtime failed on a batch: it may pass (resources, a device), so the batch is
    tried again before its jobs are run one by one."""

    code = ErrorCode.INFERENCE_ERROR


@dataclass(frozen=True, slots=True)
class IoSpec:
    name: str
    datatype: Datatype
    shape: tuple[int | None, ...]  # None: any size

    def describe(self) -> str:
        dims = ", ".join("?" if dim is None else str(dim) for dim in self.shape)
        return f"{self.datatype} [{dims}]"

    def check(self, array: npt.NDArray[Any]) -> None:
        got = f"{Datatype.from_numpy(array.dtype)} {list(array.shape)}"
        fits = array.dtype == self.datatype.numpy_dtype and len(array.shape) == len(self.shape)
        if fits:
            fits = all(
                want is None or want == dim
                for want, dim in zip(self.shape, array.shape, strict=True)
            )
        if not fits:
            raise InputError(f"input '{self.name}' expects {self.describe()}, got {got}")

    @property
    def batchable(self) -> bool:
        return bool(self.shape) and self.shape[0] is None


def _dim(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim >= 0 else None


def _spec(node: Any) -> IoSpec:
    return IoSpec(
        node.name, _ORT_TYPES.get(node.type, Datatype.BYTES), tuple(map(_dim, node.shape))
    )


def _same_rows(arrays: Arrays) -> None:
    """The inputs of one job must have as many rows each: a batch joins each input of its
    jobs on its own, and cuts the outputs by the rows of the first."""
    rows = {name: array.shape[0] if array.ndim else None for name, array in arrays.items()}
    if len(set(rows.values())) > 1:
        counts = ", ".join(f"'{name}' {count}" for name, count in rows.items())
        raise InputError(
            f"the inputs of a job must have the same number of rows (first dimension): {counts}"
        )


def _check_names(path: Path, field: str, names: dict[str, str], graph: dict[str, Any]) -> None:
    unknown = sorted(set(names) - set(graph))
    if unknown:
        raise ConfigError(
            f"{path}: {field} renames {unknown}, which the graph does not have "
            f"(it has {sorted(graph)})"
        )


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads steal the cores that Kafka and the other sessions need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class LoadedModel:
    def __init__(
        self,
        name: str,
        version: str,
        path: Path,
        config: ModelConfig,
        *,
        intra_op_threads: int,
        providers: list[str],
    ) -> None:
        self.name = name
        self.version = version
        self.config = config
        wanted = config.execution_providers or providers
        available = set(ort.get_available_providers())
        chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        skipped = [p for p in wanted if p not in available]
        if skipped:
            log.warning("model %s: providers %s are not available here", name, skipped)
        self.session = ort.InferenceSession(
            str(path), sess_options=session_options(intra_op_threads), providers=chosen
        )
        log.info(
            "loaded model %s version %s from %s on %s",
            name,
            version,
            path,
            ", ".join(self.session.get_providers()),
        )
        model_dir = path.parent.parent
        self._preprocess = [step.bind(model_dir) for step in config.preprocess]
        graph_inputs = {node.name: _spec(node) for node in self.session.get_inputs()}
        graph_outputs = {node.name: _spec(node) for node in self.session.get_outputs()}
        _check_names(path, "input_names", config.input_names, graph_inputs)
        _check_names(path, "output_names", config.output_names, graph_outputs)
        produced = {name for step in config.preprocess for name in step.produces}
        # What clients send: the graph's inputs under their public names, less those that
        # pre-processing makes, plus what pre-processing takes.
        self._to_graph = {public: graph for graph, public in config.input_names.items()}
        self.inputs = {
            public: IoSpec(public, spec.datatype, spec.shape)
            for graph, spec in graph_inputs.items()
            if graph not in produced
            for public in [config.input_names.get(graph, graph)]
        } | {step.input: IoSpec(step.input, Datatype.BYTES, (None,)) for step in config.preprocess}
        self._graph_outputs = list(graph_outputs)
        self.outputs = {
            public: IoSpec(public, spec.datatype, spec.shape)
            for graph, spec in graph_outputs.items()
            for public in [config.output_names.get(graph, graph)]
        }
        self.output_names = list(self.outputs)
        # Whether jobs can share a call: every input has a free first dimension.
        self.batchable = all(spec.batchable for spec in self.inputs.values())
        self._valid_layouts: set[tuple[Any, ...]] = set()

    def validate(self, arrays: Arrays) -> None:
        """InputError unless `arrays` fit the model's inputs; a fitting layout is remembered."""
        rows = 1 if self.batchable else 0  # a fixed first dimension is part of the layout
        layout = tuple((n, a.dtype.str, a.shape[rows:], a.ndim) for n, a in arrays.items())
        if layout not in self._valid_layouts:
            self._check(arrays)
            if len(self._valid_layouts) < _MAX_LAYOUTS:
                self._valid_layouts.add(layout)
        if self.batchable and len(arrays) > 1:
            _same_rows(arrays)  # not part of the layout: checked every time

    def _check(self, arrays: Arrays) -> None:
        missing = sorted(set(self.inputs) - set(arrays))
        extra = sorted(set(arrays) - set(self.inputs))
        if missing or extra:
            expected = ", ".join(f"'{n}' {s.describe()}" for n, s in self.inputs.items())
            raise InputError(
                f"model {self.name} version {self.version} takes inputs {expected}; "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        for name, array in arrays.items():
            self.inputs[name].check(array)

    def run(self, arrays: Arrays) -> Arrays:
        arrays = {self._to_graph.get(name, name): value for name, value in arrays.items()}
        for prepare in self._preprocess:
            arrays = prepare(arrays)
        try:
            values = self.session.run(self._graph_outputs, arrays)
        except Exception as exc:  # ONNX Runtime's own exception types are not exported
            raise InferenceFailed(str(exc)) from exc
        outputs: Arrays = {
            public: np.asarray(value)
            for public, value in zip(self.output_names, values, strict=True)
        }
        for step in self.config.postprocess:
            step.apply(outputs)
        return outputs
