"""The inference worker: consumer group -> decode/validate -> batch -> ONNX Runtime -> results."""

from worker.main import Worker
from worker.settings import WorkerSettings

__all__ = ["Worker", "WorkerSettings"]
