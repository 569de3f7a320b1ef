"""The client SDK: submit prediction jobs to Kafka and go on with your work."""

from producer.aio import AsyncClient
from producer.client import Client
from producer.requests import BrokerUnavailable, Inputs, PayloadTooLarge, SubmitError
from producer.settings import ProducerSettings
from producer.waiting import ApiRefused, JobNotFound, JobTimeout, Unauthorized

__all__ = [
    "ApiRefused",
    "AsyncClient",
    "BrokerUnavailable",
    "Client",
    "Inputs",
    "JobNotFound",
    "JobTimeout",
    "PayloadTooLarge",
    "ProducerSettings",
    "SubmitError",
    "Unauthorized",
]
