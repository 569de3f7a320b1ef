"""Settings of the SDK clients (env prefix INFERQ_); pass your own to override the environment."""

from pydantic import Field

from inferq.settings import AdmissionSettings


class ProducerSettings(AdmissionSettings):
    linger_ms: int = Field(default=0, ge=0, description="how long records wait to fill a batch")
    binary_tensors: bool = Field(
        default=True,
        description="send numpy inputs as raw little-endian bytes (results come back the same)",
    )
    queued_events: bool = Field(
        default=True,
        description="write a `queued` event with each job, so the results API knows it at "
        "once; off, a job is unknown there (404) until a worker has run it, and submitting "
        "costs one record less",
    )
    tenant: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="tenant the submitted jobs belong to; with API keys on, only that tenant's "
        "keys can read them",
    )
    api_url: str = Field(
        default="http://127.0.0.1:8000", description="results API that `wait()` asks"
    )
    api_key: str | None = Field(
        default=None, description="bearer key `wait()` sends, when the API requires one", repr=False
    )
