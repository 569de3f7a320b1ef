"""Per-model config.json: renamed inputs and outputs, label maps, bad renames."""

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from inferq.demo_models import dataset
from worker.config import ConfigError
from worker.repository import ModelRepository


def repo_with(model_repo: Path, tmp_path: Path, config: Mapping[str, object]) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(model_repo / "breast_cancer", repo / "breast_cancer")
    (repo / "breast_cancer" / "config.json").write_text(json.dumps(config))
    return repo


def load(repo: Path) -> ModelRepository:
    return ModelRepository(
        repo, ["breast_cancer"], intra_op_threads=1, providers=["CPUExecutionProvider"]
    )


def test_clients_use_the_configured_names(model_repo: Path, tmp_path: Path) -> None:
    config = {
        "input_names": {"input": "features"},
        "output_names": {"label": "diagnosis"},
        "postprocess": [
            {
                "op": "label_map",
                "output": "diagnosis",
                "into": "diagnosis_name",
                "labels": {"0": "malignant", "1": "benign"},
            }
        ],
    }
    model = load(repo_with(model_repo, tmp_path, config)).get("breast_cancer")
    assert list(model.inputs) == ["features"]
    assert list(model.outputs) == ["diagnosis", "probabilities"]
    features, _ = dataset("breast_cancer")
    rows = features[:3]
    model.validate({"features": rows})
    outputs = model.run({"features": rows})
    direct = ort.InferenceSession(str(model_repo / "breast_cancer" / "1" / "model.onnx"))
    label, probabilities = direct.run(None, {"input": rows})
    assert outputs["diagnosis"].tolist() == label.tolist()
    np.testing.assert_allclose(outputs["probabilities"], probabilities, atol=1e-6)
    names = {0: "malignant", 1: "benign"}
    assert outputs["diagnosis_name"].tolist() == [names[int(c)] for c in label]


def test_renaming_what_the_graph_lacks_is_a_config_error(model_repo: Path, tmp_path: Path) -> None:
    repo = repo_with(model_repo, tmp_path, {"output_names": {"score": "s"}})
    with pytest.raises(ConfigError) as caught:
        load(repo)
    assert str(caught.value).endswith(
        "output_names renames ['score'], which the graph does not have "
        "(it has ['label', 'probabilities'])"
    )
