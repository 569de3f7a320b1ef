"""What one model's pipeline has done since the worker started: `GET /metrics` writes it."""

from dataclasses import dataclass


@dataclass(slots=True)
class PipelineStats:
    batches: int = 0  # batches run by ONNX Runtime
    batch_jobs: int = 0  # jobs in those batches
    batch_seconds: float = 0.0  # running them and writing their result records
    rejected: int = 0  # records that could not run: failed, or dead-lettered if unreadable
    cancelled: int = 0  # jobs not run because they were cancelled
    expired: int = 0  # jobs not run because their deadline had passed
    commit_failures: int = 0  # commits the broker refused or did not answer
