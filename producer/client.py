"""The synchronous client, on kafka-python."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
from kafka import KafkaProducer
from kafka.errors import KafkaError

from inferq.connections import kafka_python_producer_options
from producer.requests import (
    BrokerUnavailable,
    Inputs,
    build_request,
    cancel_records,
    sdk_records,
)
from producer.settings import ProducerSettings
from producer.waiting import wait_sync
from schemas import JobEvent, KafkaRecord


class Client:
    """Submit jobs from synchronous code. `submit` returns the job id at once.

    Records are sent in the background; `flush()` waits until every submitted job is
    acknowledged by the broker (acks=all), `close()` flushes and releases the connection.
    """

    def __init__(
        self, bootstrap_servers: str | None = None, *, settings: ProducerSettings | None = None
    ) -> None:
        settings = settings or ProducerSettings()
        if bootstrap_servers is not None:
            settings = settings.model_copy(update={"bootstrap_servers": bootstrap_servers})
        self.settings = settings
        self._topics = settings.topics
        self._http: httpx.Client | None = None  # for `wait`, made on first use
        timeout_ms = int(settings.submit_timeout_s * 1000)
        try:
            self._producer = KafkaProducer(
                **{
                    **kafka_python_producer_options(settings),
                    "linger_ms": settings.linger_ms,
                    "bootstrap_timeout_ms": timeout_ms,
                    "max_block_ms": timeout_ms,
                    "request_timeout_ms": timeout_ms,
                }
            )
        except KafkaError as exc:
            raise BrokerUnavailable(
                f"cannot reach the broker at {settings.bootstrap_servers}: {exc}"
            ) from exc

    def submit(
        self,
        model: str,
        inputs: Inputs,
        *,
        job_id: str | None = None,
        model_version: str | None = None,
        callback_url: str | None = None,
        callback_events: Sequence[str] | None = None,
        deadline: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> str:
        """Queue one job for `model` and return its id (the given `job_id`, or a new one).

        With `callback_url`, the results API POSTs the job there, signed, when it ends
        (`callback_events=["completed", "running"]`: also when a worker starts it)."""
        request = build_request(
            model,
            inputs,
            job_id=job_id,
            model_version=model_version,
            callback_url=callback_url,
            callback_events=callback_events,
            deadline=deadline,
            metadata=metadata,
            parameters=parameters,
            tenant=self.settings.tenant,
            binary=self.settings.binary_tensors,
        )
        self._send(sdk_records(self.settings, request))
        return request.job_id

    def cancel(self, job_id: str) -> None:
        """Ask for a job to be cancelled: a worker that has not started it will not run it,
        and the job ends `cancelled` unless a result was written first (read the job to see
        which); `flush()` waits for the broker to take the request."""
        self._send(cancel_records(self._topics, job_id, tenant=self.settings.tenant))

    def _send(self, records: list[tuple[str, KafkaRecord]]) -> None:
        for topic, record in records:
            try:
                self._producer.send(
                    topic, key=record.key, value=record.value, headers=record.headers
                )
            except KafkaError as exc:
                raise BrokerUnavailable(
                    f"the broker did not take the record for {topic} within "
                    f"{self.settings.submit_timeout_s:g} s (submit_timeout_s): {exc}"
                ) from exc

    def wait(self, job_id: str, timeout: float = 60.0) -> JobEvent:
        """Block until the job is terminal and return it, asking the results API
        (`settings.api_url`, with `settings.api_key` as bearer key).

        Raises JobTimeout (its `last` state attached) when `timeout` seconds pass first,
        JobNotFound when the API did not know the job all that time, Unauthorized at once
        when the API refuses the key. Unreachable API and 5xx answers are retried.
        """
        if self._http is None:
            self._http = httpx.Client()
        return wait_sync(self._http, self.settings, job_id, timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every submitted job is acknowledged by the broker."""
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:
            raise BrokerUnavailable(f"jobs not acknowledged by the broker: {exc}") from exc

    def close(self, timeout: float | None = None) -> None:
        try:
            self._producer.close(timeout=timeout)
        finally:
            if self._http is not None:
                self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
