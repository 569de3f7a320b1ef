"""The model repository: `<repo>/<model>/<version>/model.onnx`, highest version by default."""

import logging
from pathlib import Path

from worker.config import ModelConfig
from worker.runtime import LoadedModel

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"


class ModelNotFound(LookupError):
    pass


class VersionNotFound(LookupError):
    pass


def list_models(root: Path) -> list[str]:
    """Models in the repository: directories holding at least one `<version>/model.onnx`."""
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and _versions(d))


def _versions(model_dir: Path) -> list[str]:
    found = [
        d.name
        for d in model_dir.iterdir()
        if d.is_dir() and d.name.isdigit() and (d / MODEL_FILE).is_file()
    ]
    return sorted(found, key=int)


class ModelRepository:
    """Loads every version of the served models; `get` picks the highest unless told."""

    def __init__(
        self, root: Path, models: list[str], *, intra_op_threads: int, providers: list[str]
    ) -> None:
        self.root = root
        self._versions: dict[str, dict[str, LoadedModel]] = {}
        for name in models:
            model_dir = root / name
            versions = _versions(model_dir) if model_dir.is_dir() else []
            if not versions:
                raise ModelNotFound(f"no {MODEL_FILE} under {model_dir}/<version>/")
            config = ModelConfig.load(model_dir)
            self._versions[name] = {
                version: LoadedModel(
                    name,
                    version,
                    model_dir / version / MODEL_FILE,
                    config,
                    intra_op_threads=intra_op_threads,
                    providers=providers,
                )
                for version in versions
            }

    @property
    def models(self) -> list[str]:
        return sorted(self._versions)

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        versions = self._versions.get(name)
        if versions is None:
            raise ModelNotFound(f"model '{name}' is not served by this worker")
        if version is None:
            return versions[max(versions, key=int)]
        try:
            return versions[version]
        except KeyError:
            raise VersionNotFound(
                f"model '{name}' has no version '{version}'; "
                f"served versions: {', '.join(sorted(versions, key=int))}"
            ) from None
