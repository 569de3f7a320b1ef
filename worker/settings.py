"""The worker's one settings object (env prefix INFERQ_)."""

import os
import socket
from pathlib import Path

from pydantic import Field, model_validator

from inferq.settings import ProcessSettings

DEFAULT_MAX_RESULT_BYTES = 1_000_000  # under Kafka's default message.max.bytes (1,048,588)


def _cores() -> int:
    """Cores this process may run on (measured: one single-threaded process per core beats
    one process with as many ONNX Runtime threads; see README, Performance)."""
    return len(os.sched_getaffinity(0))


def _default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(ProcessSettings):
    model_repository: Path = Field(default=Path("models"))
    models: list[str] = Field(
        default_factory=list, description="models to serve; empty serves every model in the repo"
    )
    worker_name: str = Field(default_factory=_default_name)
    processes: int = Field(
        default_factory=_cores,
        ge=1,
        le=256,
        description="worker processes `inferq worker` starts: one per available core",
    )
    max_batch_size: int = Field(default=64, ge=1, le=65_536, description="rows per ORT call")
    max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="how long a batch waits for more jobs after its first arrived",
    )
    max_buffered_jobs: int = Field(
        default=1024,
        ge=1,
        description="jobs fetched and waiting for a batch; fetching pauses above",
    )
    max_in_flight_batches: int = Field(
        default=8, ge=1, description="batches whose results await the broker's acknowledgement"
    )
    refresh_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=86_400,
        description="how often new model versions are looked for and the served models announced",
    )
    inference_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="tries again of a batch ONNX Runtime failed (backoff from 50 ms, with "
        "jitter) before its jobs run one by one",
    )
    drain_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="grace period after SIGTERM to finish fetched jobs, publish, commit and leave; "
        "jobs not committed by then run again on another worker",
    )
    max_cancelled_jobs: int = Field(
        default=100_000,
        ge=1,
        description="cancelled job ids each worker remembers (the most recent ones)",
    )
    max_result_bytes: int = Field(
        default=DEFAULT_MAX_RESULT_BYTES,
        ge=1024,
        description="largest result record (key, JSON and headers) a worker sends; a job whose "
        "result is larger ends failed with payload_too_large. Keep it under the broker's "
        "message.max.bytes",
    )
    max_poll_records: int = Field(default=1024, ge=1)
    worker_host: str = Field(
        default="127.0.0.1", description="where the worker's /healthz, /readyz and /metrics listen"
    )
    worker_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="port of /healthz, /readyz and /metrics (unset: none); with several "
        "processes, process i listens on this port + i",
    )
    intra_op_threads: int = Field(default=1, ge=0, description="0 lets ONNX Runtime decide")
    execution_providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])

    @model_validator(mode="after")
    def _ports_fit(self) -> "WorkerSettings":
        port = self.worker_port
        if port and port + self.processes - 1 > 65535:
            raise ValueError(
                f"worker_port {port} with {self.processes} processes needs ports up to "
                f"{port + self.processes - 1}: the last is 65535"
            )
        return self
