"""Build the demo models offline from scikit-learn's bundled data sets (no downloads).

- `breast_cancer`: scaler + logistic regression, 30 FP32 features -> `label`, `probabilities`.
- `diabetes`: scaler + ridge regression, 10 FP32 features -> `variable`, clamped at 0 by the
  worker (`config.json`): a predicted quantity cannot be negative.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DEMO_MODELS = ("breast_cancer", "diabetes")
INPUT_NAME = "input"


class MissingExtra(RuntimeError):
    pass


def _imports() -> tuple[Any, Any]:
    try:
        import skl2onnx
        import sklearn.datasets
    except ImportError as exc:
        raise MissingExtra(
            "building the demo models needs scikit-learn and skl2onnx: pip install 'inferq[models]'"
        ) from exc
    return sklearn.datasets, skl2onnx


def dataset(name: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[Any]]:
    """The bundled data set a demo model was trained on: (features as FP32, targets)."""
    datasets, _ = _imports()
    loader = {"breast_cancer": datasets.load_breast_cancer, "diabetes": datasets.load_diabetes}
    features, target = loader[name](return_X_y=True)
    return np.asarray(features, dtype=np.float32), np.asarray(target)


def _export(pipeline: Any, n_features: int, path: Path, options: dict[Any, Any]) -> None:
    _, skl2onnx = _imports()
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = skl2onnx.convert_sklearn(
        pipeline,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        options=options,
        target_opset=17,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_model.SerializeToString())


def build_breast_cancer(repo: Path) -> Path:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = dataset("breast_cancer")
    classifier = LogisticRegression(max_iter=5000, random_state=0)
    pipeline = make_pipeline(StandardScaler(), classifier).fit(features, target)
    path = repo / "breast_cancer" / "1" / "model.onnx"
    _export(pipeline, features.shape[1], path, {id(classifier): {"zipmap": False}})
    return path


def build_diabetes(repo: Path) -> Path:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = dataset("diabetes")
    pipeline = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(features, target)
    path = repo / "diabetes" / "1" / "model.onnx"
    _export(pipeline, features.shape[1], path, {})
    config = {"postprocess": [{"op": "clamp", "output": "variable", "min": 0.0}]}
    (repo / "diabetes" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return path


def build_demo_models(repo: Path) -> list[Path]:
    """Write every demo model into `repo`; returns the model files written."""
    _imports()
    return [build_breast_cancer(repo), build_diabetes(repo)]


def build_missing_demo_models(repo: Path) -> list[Path]:
    """Write the demo models that `repo` lacks (version 1, which the demo checks against);
    returns the model files written."""
    builders = {"breast_cancer": build_breast_cancer, "diabetes": build_diabetes}
    missing = [name for name in DEMO_MODELS if not (repo / name / "1" / "model.onnx").is_file()]
    if missing:
        _imports()
    return [builders[name](repo) for name in missing]
