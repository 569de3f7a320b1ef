"""The results API's one settings object (env prefix INFERQ_)."""

from pydantic import Field

from inferq.settings import KafkaSettings


class ApiSettings(KafkaSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    store: str = Field(
        default="sqlite:///inferq-results.db",
        description="result store: sqlite:///relative.db, sqlite:////absolute.db or sqlite://:memory:",
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

    @property
    def ingest_group_id(self) -> str:
        return self.ingest_group or f"{self.topic_prefix}.results-api"
