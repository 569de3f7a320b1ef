"""Settings of the SDK clients (env prefix INFERQ_); pass your own to override the environment."""

from pydantic import Field

from inferq.settings import KafkaSettings


class ProducerSettings(KafkaSettings):
    submit_timeout_s: float = Field(
        default=10.0, gt=0, description="how long submit may block when the broker is unreachable"
    )
    linger_ms: int = Field(default=0, ge=0, description="how long records wait to fill a batch")
    binary_tensors: bool = Field(
        default=True,
        description="send numpy inputs as raw little-endian bytes (results come back the same)",
    )
