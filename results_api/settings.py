"""The results API's one settings object (env prefix INFERQ_)."""

from pydantic import Field

from inferq.settings import AdmissionSettings, ProcessSettings
from results_api.webhooks.settings import WebhookSettings


class ApiSettings(AdmissionSettings, WebhookSettings, ProcessSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    store: str = Field(
        default="sqlite:///inferq-results.db",
        description="result store: sqlite:///relative.db, sqlite:////absolute.db, "
        "sqlite://:memory: or redis://host:port/db (shared by several API replicas)",
    )
    result_retention_s: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="how long the store keeps a job after its last change (default 7 days)",
    )
    api_keys: str = Field(
        default="",
        description="bearer keys, comma-separated `tenant:sha256-hex-of-key` entries (make one "
        "with `inferq keys new TENANT`); empty: no authentication",
        repr=False,
    )
    ingest_group: str | None = Field(
        default=None,
        description="consumer group that ingests results; default <prefix>.results-api",
    )
    not_found_wait_ms: int = Field(
        default=1000,
        ge=0,
        le=10_000,
        description="how long a GET for an unknown id waits for ingestion to catch up before 404",
    )

    max_backlog: int = Field(
        default=100_000,
        ge=0,
        description="POST /v1/jobs answers 429 while a model has more jobs than this not yet "
        "committed by its workers (consumer lag); 0 turns the check off",
    )
    backlog_refresh_ms: int = Field(
        default=1000,
        ge=10,
        le=60_000,
        description="how long a model's measured backlog is reused; also the Retry-After of a 429",
    )
    drain_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="grace period after SIGTERM for requests in flight (long-polls included)",
    )
    keep_alive_s: int = Field(
        default=75,
        ge=1,
        le=3600,
        description="how long an idle HTTP connection stays open: longer than the idle "
        "timeout of the clients' connection pools and of a load balancer in front, or a "
        "request sent as the server closes the connection fails (uvicorn and httpx both "
        "default to 5 s)",
    )
    cancel_wait_ms: int = Field(
        default=5000,
        ge=0,
        le=60_000,
        description="how long POST /v1/jobs/{id}/cancel waits to learn whether the cancellation "
        "or a result came first (202 if it cannot tell by then)",
    )

    @property
    def ingest_group_id(self) -> str:
        return self.ingest_group or f"{self.topic_prefix}.results-api"

    @property
    def webhook_group_id(self) -> str:
        return self.webhook_group or f"{self.topic_prefix}.webhooks"
