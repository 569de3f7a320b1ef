"""Inputs for each benchmarked model."""

from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from inferq.demo_models import dataset

TEXTS = (
    "The queue absorbs the burst and the workers catch up.",
    "A short sentence.",
    "Embeddings map text to vectors of 384 numbers that keep its meaning.",
    "ONNX Runtime runs the model off the event loop.",
)


@cache
def _features(name: str) -> npt.NDArray[np.float32]:
    return dataset(name)[0]


def make_inputs(model: str, i: int, rows: int) -> dict[str, Any]:
    """The i-th input of `model` with `rows` rows."""
    if model in ("breast_cancer", "diabetes"):
        features = _features(model)
        at = (i * rows) % (len(features) - rows)
        return {"input": features[at : at + rows]}
    if model == "minilm":
        return {"text": np.array([TEXTS[(i + r) % len(TEXTS)] for r in range(rows)], dtype=object)}
    if model == "resnet18":
        rng = np.random.default_rng(i)
        return {"image": rng.integers(0, 256, (rows, 3, 224, 224), dtype=np.uint8)}
    raise ValueError(f"no bench inputs for model {model!r}")
