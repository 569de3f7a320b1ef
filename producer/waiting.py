"""`wait()`: long-poll the results API until a job is terminal, for both clients.

`_Poll` decides (what to ask, what an answer means, how long to pause); `wait_sync` and
`wait_async` only do the I/O, so the two clients behave the same.
"""

import asyncio
import time
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import quote

import httpx

from inferq.retry import Backoff
from producer.settings import ProducerSettings
from schemas import ErrorCode, JobEvent
from schemas.errors import PermanentError, TransientError

MAX_WAIT_S = 60.0  # the API holds a request at most this long
GRACE_S = 5.0  # the read timeout of a long-poll beyond the wait it asks for...
LAST_GRACE_S = 0.5  # ...but no more than this beyond the deadline
BACKOFF = Backoff(first_s=0.05, max_s=1.0)


class ApiRefused(PermanentError):
    """The results API refused the request (a 4xx other than one worth retrying)."""

    code = ErrorCode.INVALID_REQUEST

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Unauthorized(ApiRefused):
    """The API requires a key and `api_key` is missing or not one it knows."""

    code = ErrorCode.UNAUTHORIZED


class JobNotFound(ApiRefused, LookupError):
    """The API did not know the job at any time before the timeout."""

    code = ErrorCode.JOB_NOT_FOUND


class JobTimeout(TransientError, TimeoutError):
    """The job was not terminal when the timeout passed; `last` is its last state seen
    (None if the API never answered it), `__cause__` the last failed try, if any."""

    code = ErrorCode.DEADLINE_EXCEEDED

    def __init__(self, message: str, last: JobEvent | None) -> None:
        super().__init__(message)
        self.last = last


def _message(response: httpx.Response) -> str:
    """The `error.message` of an API error body, else the start of the body."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _retry_after_s(response: httpx.Response) -> float | None:
    """The seconds of a `Retry-After` in delta-seconds form; None if absent or another form."""
    value = response.headers.get("retry-after", "").strip()
    # isdigit alone takes "²", which float() does not
    return float(value) if value.isascii() and value.isdigit() else None


class _Poll:
    """One `wait`: its deadline (monotonic), what it has seen, and its pauses."""

    def __init__(self, settings: ProducerSettings, job_id: str, within_s: float) -> None:
        self.job_id = job_id
        self.url = f"{settings.api_url.rstrip('/')}/v1/jobs/{quote(job_id, safe='')}"
        key = settings.api_key
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._within_s = within_s
        self._deadline = time.monotonic() + within_s
        self._pauses: Iterator[float] = BACKOFF.pauses()
        self._last: JobEvent | None = None
        self._failure: Exception | None = None  # why the last try did not answer the job
        self._asked = False

    def request(self) -> tuple[dict[str, str], httpx.Timeout]:
        """The query and timeout of the next GET; raises once the deadline has passed (the
        API is always asked once, `wait=0` when there is no time to wait)."""
        left = max(0.0, self._deadline - time.monotonic())
        if not left and self._asked:
            self._expired()
        self._asked = True
        wait = min(left, MAX_WAIT_S)
        return {"wait": f"{wait:.3f}"}, httpx.Timeout(min(wait + GRACE_S, left + LAST_GRACE_S))

    def answered(self, response: httpx.Response) -> JobEvent | float:
        """The terminal job, or how long to pause before asking again."""
        status = response.status_code
        if status == 200:
            self._last, self._failure = JobEvent.model_validate_json(response.content), None
            self._pauses = BACKOFF.pauses()
            if self._last.status.terminal:
                return self._last
            # not terminal: its wait ran out (ask again at once), or the API is stopping and
            # answered early, saying when to come back (asking at once would spin till it's gone)
            return self._until_deadline(_retry_after_s(response) or 0.0)
        if status == 401:
            raise Unauthorized(f"the results API refused the key: {_message(response)}", status)
        if status == 404:  # perhaps not ingested yet: a job sent through Kafka takes a moment
            self._failure = JobNotFound(
                f"no job with id '{self.job_id}' within {self._within_s:g} s", status
            )
            return self._pause()
        if status >= 500:
            self._failure = httpx.HTTPStatusError(
                f"the results API answered {status}: {_message(response)}",
                request=response.request,
                response=response,
            )
            return self._pause()
        raise ApiRefused(f"the results API answered {status}: {_message(response)}", status)

    def failed(self, exc: httpx.TransportError) -> float:
        """How long to pause after a try that got no answer."""
        self._failure = exc
        return self._pause()

    def _pause(self) -> float:
        return self._until_deadline(next(self._pauses))

    def _until_deadline(self, pause: float) -> float:
        return max(0.0, min(pause, self._deadline - time.monotonic()))

    def _expired(self) -> NoReturn:
        if isinstance(self._failure, JobNotFound) and self._last is None:
            raise self._failure  # never seen: a job seen once times out with its state
        state = f"still {self._last.status.value}" if self._last else "never read"
        raise JobTimeout(
            f"job '{self.job_id}' not terminal within {self._within_s:g} s ({state})", self._last
        ) from self._failure


def wait_sync(
    http: httpx.Client, settings: ProducerSettings, job_id: str, within_s: float
) -> JobEvent:
    """Block until the job is terminal; see `Client.wait`."""
    poll = _Poll(settings, job_id, within_s)
    while True:
        params, limit = poll.request()
        try:
            response = http.get(poll.url, params=params, headers=poll.headers, timeout=limit)
        except httpx.TransportError as exc:
            outcome: JobEvent | float = poll.failed(exc)
        else:
            outcome = poll.answered(response)
        if isinstance(outcome, JobEvent):
            return outcome
        time.sleep(outcome)


async def wait_async(
    http: httpx.AsyncClient, settings: ProducerSettings, job_id: str, within_s: float
) -> JobEvent:
    """Wait until the job is terminal; see `AsyncClient.wait`."""
    poll = _Poll(settings, job_id, within_s)
    while True:
        params, limit = poll.request()
        try:
            response = await http.get(poll.url, params=params, headers=poll.headers, timeout=limit)
        except httpx.TransportError as exc:
            outcome: JobEvent | float = poll.failed(exc)
        else:
            outcome = poll.answered(response)
        if isinstance(outcome, JobEvent):
            return outcome
        await asyncio.sleep(outcome)
