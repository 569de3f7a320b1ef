"""What workers serve, as they announce it on `<prefix>.models` (key = worker name)."""

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.messages import SCHEMA_VERSION
from schemas.tensors import Datatype


class TensorSpec(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={"examples": [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]},
    )

    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 for a dimension of any size")


class ServedModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    versions: list[str] = Field(description="every loaded version, oldest first")
    default_version: str = Field(description="the version a request without one gets")
    inputs: list[TensorSpec] = Field(description="what requests send (of the default version)")
    outputs: list[TensorSpec]
    max_batch_size: int


class Announcement(BaseModel):
    """A worker's statement of what it serves; repeated every `interval_s`."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    worker: str
    models: list[ServedModel]
    announced_at: AwareDatetime  # compared with the reader's clock: a naive one cannot be
    interval_s: float = Field(gt=0, le=86_400)
