"""The synchronous client, on kafka-python."""

import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
from kafka import KafkaProducer
from kafka.errors import IllegalStateError, KafkaError

from inferq.connections import kafka_python_producer_options
from producer.calls import Calls
from producer.requests import (
    BrokerUnavailable,
    Inputs,
    cancel_records,
    job_records,
    not_acknowledged,
)
from producer.settings import ProducerSettings
from producer.waiting import wait_sync
from schemas import JobEvent, KafkaRecord

log = logging.getLogger(__name__)


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
        # kafka-python reports a record the broker did not acknowledge only to its future
        # (its flush does not raise), on its sender thread.
        self._refused: list[tuple[str, BaseException]] = []  # job id, error
        # An RLock: a signal handler's `close` may report while its thread holds it.
        self._refused_lock = threading.RLock()
        self._calls = Calls(self.close)
        timeout_ms = int(settings.submit_timeout_s * 1000)
        try:
            self._producer = KafkaProducer(
                **{
                    **kafka_python_producer_options(settings),
                    "linger_ms": settings.linger_ms,
                    "bootstrap_timeout_ms": timeout_ms,
                    "max_block_ms": timeout_ms,
                    "request_timeout_ms": timeout_ms,
                    # a record is given up once its batch waited and was tried that long
                    "delivery_timeout_ms": settings.linger_ms + timeout_ms,
                }
            )
        except KafkaError as exc:
            raise BrokerUnavailable(
                f"cannot reach the broker at {settings.bootstrap_servers}: {exc}"
            ) from exc
        self._http = httpx.Client()  # for `wait`; one for all threads, closed by `close`

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
        job_id, records = job_records(
            self.settings,
            model,
            inputs,
            job_id=job_id,
            model_version=model_version,
            callback_url=callback_url,
            callback_events=callback_events,
            deadline=deadline,
            metadata=metadata,
            parameters=parameters,
        )
        self._send(records, job_id)
        return job_id

    def cancel(self, job_id: str) -> None:
        """Ask for a job to be cancelled: a worker that has not started it will not run it,
        and the job ends `cancelled` unless a result was written first (read the job to see
        which); `flush()` waits for the broker to take the request."""
        self._send(cancel_records(self._topics, job_id, tenant=self.settings.tenant), job_id)

    def _send(self, records: list[tuple[str, KafkaRecord]], job_id: str) -> None:
        """Hand the records over in order; the first refused raises, and the rest stay."""
        with self._calls.call(sends=True):
            self._hand_over(records, job_id)

    def _hand_over(self, records: list[tuple[str, KafkaRecord]], job_id: str) -> None:
        for topic, record in records:
            try:
                future = self._producer.send(
                    topic, key=record.key, value=record.value, headers=record.headers
                )
                if future.is_done and future.failed():
                    raise future.exception
            except IllegalStateError as exc:  # closed by a `close` this `_send` did not wait for
                raise BrokerUnavailable(
                    f"the client was closed before the record for {topic} was sent", [job_id]
                ) from exc
            except KafkaError as exc:
                raise BrokerUnavailable(
                    f"the broker did not take the record for {topic} within "
                    f"{self.settings.submit_timeout_s:g} s (submit_timeout_s): {exc}",
                    [job_id],
                ) from exc
            future.add_errback(self._note_refused, job_id)

    def _note_refused(self, job_id: str, error: BaseException) -> None:
        with self._refused_lock:
            self._refused.append((job_id, error))

    def wait(self, job_id: str, timeout: float = 60.0) -> JobEvent:
        """Block until the job is terminal and return it, asking the results API
        (`settings.api_url`, with `settings.api_key` as bearer key).

        Raises JobTimeout (its `last` state attached) when `timeout` seconds pass first,
        JobNotFound when the API did not know the job all that time, Unauthorized at once
        when the API refuses the key. Unreachable API and 5xx answers are retried.
        """
        return wait_sync(self._http, self.settings, job_id, timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every submitted job is acknowledged by the broker; raises
        BrokerUnavailable if any was not (each refusal is reported once). A `timeout` that
        passes first raises too, naming the jobs refused so far: the others are still in
        flight, for a later `flush` or `close` to report."""
        with self._calls.call(sends=False):
            try:
                self._producer.flush(timeout=timeout)
            except KafkaError as exc:
                late = f"; others were still in flight after {timeout} s ({exc})"
                self._report_refused(late)
                raise BrokerUnavailable(f"jobs still in flight after {timeout} s: {exc}") from exc
            self._report_refused()

    def _report_refused(self, more: str = "") -> None:
        """Raise BrokerUnavailable for the records refused since the last report (`more`
        added to its message)."""
        with self._refused_lock:
            refused, self._refused = self._refused, []
        if refused:
            job_ids, (error, *_) = zip(*refused, strict=True)
            raise BrokerUnavailable(not_acknowledged(job_ids, error) + more, job_ids) from error

    def close(self, timeout: float | None = None) -> None:
        """Flush (`timeout` bounds it), then disconnect: records still in flight are given
        up within `submit_timeout_s`. Raises BrokerUnavailable naming every job the broker
        did not acknowledge, those given up here included. `submit` and `cancel` raise
        from here on; those already under way in other threads are waited for first (each
        record they hand over waits `submit_timeout_s` at most), and flushed too.

        From a signal handler that interrupted a call of this client on its own thread, it
        returns at once, raising nothing: that call closes the client as it ends (see
        `producer.calls`)."""
        if not self._calls.closing(timeout):
            return
        with self._calls.call(sends=False):
            try:
                with contextlib.suppress(KafkaError):  # what is left is settled by the close
                    self._producer.flush(timeout=timeout)
            finally:
                try:
                    self._producer.close()  # waits only for what delivery_timeout_ms bounds
                finally:
                    self._http.close()
            self._report_refused()  # every record is settled now: none goes unreported

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
