"""The model repository: `<repo>/<model>/<version>/model.onnx`, highest version by default."""

import logging
from pathlib import Path

from schemas.errors import ErrorCode, PermanentError
from worker.config import ConfigError, ModelConfig
from worker.runtime import LoadedModel

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"


class ModelNotFound(PermanentError, LookupError):
    code = ErrorCode.MODEL_NOT_FOUND


class VersionNotFound(PermanentError, LookupError):
    code = ErrorCode.MODEL_VERSION_NOT_FOUND


def list_models(root: Path) -> list[str]:
    """Models in the repository: directories holding at least one `<version>/model.onnx`."""
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and versions_in(d))


def versions_in(model_dir: Path) -> list[str]:
    """The version directories of a model that hold a model file, lowest first."""
    found = [
        d.name
        for d in model_dir.iterdir()
        if d.name.isascii() and d.name.isdigit() and d.is_dir() and (d / MODEL_FILE).is_file()
    ]
    return sorted(found, key=int)


class ModelRepository:
    """Loads every version of the served models; `get` picks the highest unless told.

    `refresh` loads version directories that appeared since, without a restart: requests
    see the old set of versions or the new one, never a half-loaded one.
    """

    def __init__(
        self, root: Path, models: list[str], *, intra_op_threads: int, providers: list[str]
    ) -> None:
        self.root = root
        self._names = list(models)
        self._threads = intra_op_threads
        self._providers = providers
        self._versions: dict[str, dict[str, LoadedModel]] = {}
        for name in models:
            if not (root / name).is_dir() or not versions_in(root / name):
                raise ModelNotFound(f"no {MODEL_FILE} under {root / name}/<version>/")
        self._load_new(strict=True)

    def refresh(self) -> list[str]:
        """Load new version directories; returns them as `model/version`."""
        return self._load_new(strict=False)

    def _load_new(self, *, strict: bool) -> list[str]:
        loaded: list[str] = []
        updated = dict(self._versions)
        for name in self._names:
            model_dir = self.root / name
            known = updated.get(name, {})
            try:
                present = versions_in(model_dir) if model_dir.is_dir() else []
            except OSError as exc:  # the directory moved or cannot be read: look again later
                if strict:
                    raise
                log.error("cannot list the versions of %s: %s", name, exc)
                continue
            new = [v for v in present if v not in known]
            if not new:
                continue
            versions = dict(known)
            try:
                config = ModelConfig.load(model_dir)
            except (ConfigError, OSError) as exc:
                if strict:
                    raise
                # the served versions keep the config they were loaded with
                log.error("cannot load %s versions %s: %s", name, ", ".join(new), exc)
                continue
            for version in new:
                try:
                    versions[version] = LoadedModel(
                        name,
                        version,
                        model_dir / version / MODEL_FILE,
                        config,
                        intra_op_threads=self._threads,
                        providers=self._providers,
                    )
                except Exception as exc:
                    if strict:
                        raise
                    log.error("cannot load %s version %s: %s", name, version, exc)
                    continue
                loaded.append(f"{name}/{version}")
            updated[name] = versions
        self._versions = updated  # one assignment: readers see the old map or the new one
        return loaded

    @property
    def models(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> list[str]:
        return sorted(self._versions.get(name, {}), key=int)

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
