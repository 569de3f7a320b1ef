"""Per-model configuration: `<repo>/<model>/config.json`, optional."""

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIG_FILE = "config.json"


class ConfigError(ValueError):
    pass


class Clamp(BaseModel):
    """Clamp one output into [min, max]: e.g. a predicted price cannot be negative."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["clamp"]
    output: str
    min: float | None = None
    max: float | None = None

    def apply(self, outputs: dict[str, npt.NDArray[np.generic]]) -> None:
        if self.output in outputs:
            outputs[self.output] = np.clip(outputs[self.output], self.min, self.max)


PostStep = Annotated[Clamp, Field(discriminator="op")]


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int | None = Field(default=None, ge=1)
    postprocess: list[PostStep] = Field(default_factory=list)

    @classmethod
    def load(cls, model_dir: Path) -> "ModelConfig":
        path = model_dir / CONFIG_FILE
        if not path.is_file():
            return cls()
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
