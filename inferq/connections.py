"""Keyword arguments for aiokafka and kafka-python clients built from KafkaSettings."""

from typing import Any

from aiokafka.helpers import create_ssl_context

from inferq.partitioner import KafkaPythonPlacement, place
from inferq.settings import KafkaSettings


def _common(settings: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism is not None:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def aiokafka_options(settings: KafkaSettings) -> dict[str, Any]:
    options = _common(settings)
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile, certfile=settings.ssl_certfile, keyfile=settings.ssl_keyfile
        )
    return options


def kafka_python_options(settings: KafkaSettings) -> dict[str, Any]:
    options = _common(settings)
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options.update(
            ssl_cafile=settings.ssl_cafile,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
        )
    return options


MAX_REQUEST_BYTES = 16 * 1024 * 1024  # a produce request; the broker's own limit still holds


def producer_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka producer: every write acknowledged by all in-sync replicas."""
    return {
        **aiokafka_options(settings),
        "acks": "all",
        "linger_ms": 0,
        "max_request_size": MAX_REQUEST_BYTES,
        "max_batch_size": settings.producer_batch_bytes,
        "partitioner": place,
    }


def kafka_python_producer_options(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python producer, as `producer_options` for aiokafka (kafka-python would turn
    idempotence on, which the development broker lacks)."""
    return {
        **kafka_python_options(settings),
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": 0,
        "max_request_size": MAX_REQUEST_BYTES,
        "batch_size": settings.producer_batch_bytes,
        "partitioner": KafkaPythonPlacement(),
    }


def consumer_options(settings: KafkaSettings, group_id: str | None) -> dict[str, Any]:
    """aiokafka consumer with manual commits, tuned as BROKER.md measured; without a group
    (`group_id` None) it reads every partition from the beginning."""
    return {
        **aiokafka_options(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "max_partition_fetch_bytes": 16 * 1024 * 1024,
        "fetch_max_bytes": 16 * 1024 * 1024,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
    }
