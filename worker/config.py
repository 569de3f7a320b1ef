"""Per-model configuration: `<repo>/<model>/config.json`, optional."""

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.preprocess import Tokenize

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


class LabelMap(BaseModel):
    """Name the classes of an integer output: adds a BYTES output `into` beside it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["label_map"]
    output: str
    into: str
    labels: dict[int, str]

    def apply(self, outputs: dict[str, npt.NDArray[np.generic]]) -> None:
        if self.output in outputs:
            classes = outputs[self.output]
            names = [self.labels.get(int(c), str(int(c))) for c in classes.ravel()]
            outputs[self.into] = np.array(names, dtype=object).reshape(classes.shape)


PostStep = Annotated[Clamp | LabelMap, Field(discriminator="op")]
PreStep = Tokenize


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int | None = Field(default=None, ge=1)
    execution_providers: list[str] | None = Field(
        default=None, description="this model's providers, in order; the worker's by default"
    )
    input_names: dict[str, str] = Field(
        default_factory=dict, description="graph input name -> the name clients send"
    )
    output_names: dict[str, str] = Field(
        default_factory=dict, description="graph output name -> the name in results"
    )
    preprocess: list[PreStep] = Field(default_factory=list)
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
