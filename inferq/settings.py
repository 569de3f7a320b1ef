"""Kafka connection settings, the base of every service's settings object (env prefix INFERQ_)."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from inferq.collector import CollectorSettings
from schemas.topics import Topics


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERQ_", extra="ignore")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="comma-separated host:port list"
    )
    topic_prefix: str = Field(default="inferq", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    request_partitions: int = Field(
        default=8, ge=1, description="partitions of each request topic: the most workers per model"
    )
    results_partitions: int = Field(default=8, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=0,
        le=10_000,
        description="how long a fetch waits for data; end-to-end latency follows it",
    )
    producer_batch_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="most bytes of records a producer puts in one batch per partition "
        "(aiokafka and kafka-python default to 16 KiB; the development broker spends "
        "its CPU per request, not per record); keep it under the broker's "
        "message.max.bytes",
    )

    session_timeout_ms: int = Field(
        default=6000,
        ge=1000,
        description="consumer group session timeout; a join or leave pauses the group about half",
    )
    heartbeat_interval_ms: int = Field(default=1500, ge=100)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)


class AdmissionSettings(KafkaSettings):
    """What every part that submits jobs (the SDK, the results API) checks before sending."""

    submit_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="how long a submit may wait for the broker before it fails "
        "(SDK: BrokerUnavailable; HTTP: 503)",
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="largest request accepted: the HTTP body, or the encoded record in the SDK; "
        "keep it under the broker's message.max.bytes",
    )


class ProcessSettings(KafkaSettings, CollectorSettings):
    """The part of the worker's and the results API's settings that the SDK does not read."""

    commit_interval_ms: int = Field(
        default=200,
        ge=1,
        le=60_000,
        description="how often a consumer commits the offsets of what it has finished (a "
        "worker: jobs whose results the broker acknowledged; the results API: events it "
        "stored); after a crash, what was finished since the last commit is read again",
    )
