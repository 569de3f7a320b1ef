"""Settings of the SDK clients (env prefix INFERQ_); pass your own to override the environment."""

from pydantic import Field

from inferq.settings import AdmissionSettings


class ProducerSettings(AdmissionSettings):
    linger_ms: int = Field(default=0, ge=0, description="how long records wait to fill a batch")
    binary_tensors: bool = Field(
        default=True,
        description="send numpy inputs as raw little-endian bytes (results come back the same)",
    )
