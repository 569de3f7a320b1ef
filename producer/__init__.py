"""The client SDK: submit prediction jobs to Kafka and go on with your work."""

from producer.aio import AsyncClient
from producer.client import Client
from producer.requests import BrokerUnavailable, Inputs, PayloadTooLarge, SubmitError
from producer.settings import ProducerSettings

__all__ = [
    "AsyncClient",
    "BrokerUnavailable",
    "Client",
    "Inputs",
    "PayloadTooLarge",
    "ProducerSettings",
    "SubmitError",
]
