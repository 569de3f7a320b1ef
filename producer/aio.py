"""The asynchronous client, on aiokafka."""

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from inferq.connections import MAX_REQUEST_BYTES, producer_options
from inferq.outbox import Outbox
from producer.requests import (
    BrokerUnavailable,
    Inputs,
    cancel_records,
    job_records,
    not_acknowledged,
)
from producer.settings import ProducerSettings
from producer.waiting import wait_async
from schemas import JobEvent, KafkaRecord

_NOT_OPEN = {
    "new": "the client is not started: `async with AsyncClient(...)`",
    "closed": "the client is closed",
}


class AsyncClient:
    """Submit jobs from asyncio code: `async with AsyncClient(...) as client: ...`.

    `await submit(...)` hands the records to the producer's buffer and returns the job id;
    `await flush()` waits until the broker has acknowledged every one of them.
    """

    def __init__(
        self, bootstrap_servers: str | None = None, *, settings: ProducerSettings | None = None
    ) -> None:
        settings = settings or ProducerSettings()
        if bootstrap_servers is not None:
            settings = settings.model_copy(update={"bootstrap_servers": bootstrap_servers})
        self.settings = settings
        self._topics = settings.topics
        self._producer = AIOKafkaProducer(
            **{
                **producer_options(settings),
                "linger_ms": settings.linger_ms,
                "request_timeout_ms": int(settings.submit_timeout_s * 1000),
            }
        )
        self._outbox = Outbox(
            self._producer,
            batch_bytes=settings.producer_batch_bytes,
            max_record_bytes=MAX_REQUEST_BYTES,
            max_wait_s=settings.submit_timeout_s,
        )
        # Batches not acknowledged yet, with the jobs of their records; the jobs of those
        # that failed, until a flush reports them. Only `_settled` moves them.
        self._pending: dict[asyncio.Future[Any], list[str]] = {}
        self._failed: list[tuple[str, BaseException]] = []
        self._http = httpx.AsyncClient()  # for `wait`, closed by `close`
        self._state = "new"  # then "open" once started, "closed" once close begins
        self._sending = 0  # `_send` calls under way: `close` waits for them
        self._sent: asyncio.Event | None = None  # set when the last ends, once closing

    async def start(self) -> None:
        if self._state == "closed":
            raise RuntimeError(_NOT_OPEN["closed"])
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            await self._http.aclose()
            raise BrokerUnavailable(
                f"cannot reach the broker at {self.settings.bootstrap_servers}: {exc}"
            ) from exc
        if self._state == "closed":  # a `close` came meanwhile
            await self._producer.stop()
            raise RuntimeError(_NOT_OPEN["closed"])
        self._state = "open"

    async def submit(
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
        await self._send(records, job_id)
        return job_id

    async def cancel(self, job_id: str) -> None:
        """Ask for a job to be cancelled: a worker that has not started it will not run it,
        and the job ends `cancelled` unless a result was written first (read the job to see
        which); `flush()` waits for the broker to take the request."""
        await self._send(cancel_records(self._topics, job_id, tenant=self.settings.tenant), job_id)

    async def _send(self, records: list[tuple[str, KafkaRecord]], job_id: str) -> None:
        """Hand the records over in order; the first refused raises, and the rest stay (a
        request refused leaves no `queued` event for a job that will never run)."""
        if self._state != "open":
            raise RuntimeError(_NOT_OPEN[self._state])
        self._sending += 1
        try:
            await self._register(records, job_id)
        finally:
            self._sending -= 1
            if not self._sending and self._sent is not None:
                self._sent.set()

    async def _register(self, records: list[tuple[str, KafkaRecord]], job_id: str) -> None:
        futures = await self._outbox.put(records, stop_at_refusal=True)
        for (topic, _), future in zip(records, futures, strict=False):
            if future.cancelled():  # by a `close()` that was itself cancelled meanwhile
                raise BrokerUnavailable(
                    f"the client was closed before the record for {topic} was sent", [job_id]
                )
            if future.done() and (error := future.exception()) is not None:
                raise BrokerUnavailable(
                    f"the broker did not take the record for {topic} within "
                    f"{self.settings.submit_timeout_s:g} s (submit_timeout_s): {error}",
                    [job_id],
                ) from error
            jobs = self._pending.get(future)
            if jobs is None:  # records of one batch share its future
                jobs = self._pending[future] = []
                future.add_done_callback(self._settled)
            jobs.append(job_id)

    def _settled(self, future: "asyncio.Future[Any]") -> None:
        jobs = self._pending.pop(future)
        if future.cancelled():
            error: BaseException | None = asyncio.CancelledError("the record was not sent")
        else:
            error = future.exception()
        if error is not None:
            self._failed += [(job_id, error) for job_id in jobs]

    def wait(self, job_id: str, timeout: float = 60.0) -> Coroutine[Any, Any, JobEvent]:
        """`await client.wait(job_id)`: the job once terminal, from the results API
        (`settings.api_url`, with `settings.api_key` as bearer key).

        Raises JobTimeout (its `last` state attached) when `timeout` seconds pass first,
        JobNotFound when the API did not know the job all that time, Unauthorized at once
        when the API refuses the key. Unreachable API and 5xx answers are retried.
        """
        return wait_async(self._http, self.settings, job_id, timeout)

    async def flush(self) -> None:
        """Wait until every job submitted so far is acknowledged; raises BrokerUnavailable
        if any was not (each refusal is reported once). Cancelling it cancels no record."""
        await self._producer.flush()
        if self._pending:
            await asyncio.wait(set(self._pending))  # unlike gather, never cancels them
        failed, self._failed = self._failed, []
        if failed:
            job_ids, (error, *_) = zip(*failed, strict=True)
            raise BrokerUnavailable(not_acknowledged(job_ids, error), job_ids) from error

    async def close(self) -> None:
        """Flush, then disconnect; `submit` and `cancel` raise from here on, and those
        already under way in other tasks are waited for and flushed too."""
        self._state = "closed"
        try:
            if self._sending:
                if self._sent is None:  # one for every `close` that waits
                    self._sent = asyncio.Event()
                await self._sent.wait()
            await self.flush()
        finally:
            try:
                await self._outbox.close()
                await self._producer.stop()
            finally:
                await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
