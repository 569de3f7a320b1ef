"""One way to export torch modules to ONNX, shared by the model builders."""

import warnings
from pathlib import Path
from typing import Any


def export(
    module: Any, sample: tuple[Any, ...], path: Path, inputs: list[str], outputs: list[str]
) -> Path:
    """Export with the batch (first) dimension of every input and output left dynamic.

    The TorchScript exporter is used on purpose: the newer torch.export one needs the
    `onnxscript` package. That exporter is deprecated as a whole and warns so, from its
    entry point and from the internals it calls: during this call only, those
    DeprecationWarnings are expected and not shown.
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {name: {0: "n"} for name in [*inputs, *outputs]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            sample,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    return path
