"""inferq: asynchronous, queue-based ONNX inference on Kafka.

This package holds what the services share beside the contracts: Kafka settings and
connections, topic administration, the development broker, the demo models and the CLI.
"""

__version__ = "0.1.0"
