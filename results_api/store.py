"""The result store: a view of the results topic, one entry per job, never regressing.

Two kinds, one contract (tests/test_store_contract.py): SQLite on disk for one node
(`results_api.sqlite_store`), Redis for several API replicas sharing one view
(`results_api.redis_store`). A job is kept for the retention period after its last
change; the store can always be rebuilt by replaying the results topic
(`results_api.replay`).
"""

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from schemas import JobEvent, JobStatus
from schemas.errors import ErrorCode, TransientError


class StoreError(ValueError):
    pass


class StoreUnavailable(StoreError, TransientError):
    """The store did not answer (Redis down or unreachable): trying again later may help."""

    code = ErrorCode.UNAVAILABLE


# What the store keeps of an event: its job, its state, and its JSON as it travelled.
Encoded = tuple[str, JobStatus, bytes]

ACCEPTED_URLS = (
    "sqlite:///relative.db, sqlite:////absolute.db, sqlite://:memory:, "
    "redis://host:port/db or rediss://host:port/db"
)


class ResultStore(Protocol):
    async def apply(self, events: Iterable[JobEvent]) -> None:
        """Record events; a job keeps its most advanced state (schemas.status.supersedes)."""

    async def apply_encoded(self, events: Iterable[Encoded], at: float | None = None) -> None:
        """`apply` for events whose JSON is at hand (as read from the results topic). `at`:
        when they happened (unix seconds; now if None or later): the jobs they change are
        kept for the retention from then, and none is kept if that has passed already."""

    async def get(self, job_id: str) -> JobEvent | None:
        """The job's kept event; None when it is unknown or its retention has expired."""

    async def purge_expired(self) -> int:
        """Delete the jobs whose retention has expired; returns how many were deleted."""

    async def watch(
        self, notify: Callable[[list[str]], None], resync: Callable[[], None], stop: asyncio.Event
    ) -> None:
        """Until `stop` is set, call `notify` with the ids of the jobs that another process
        changed in this store, and `resync` each time it starts to listen: changes made
        before then (while the feed was away) are not known, so every waiter should read
        the store again."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def redacted(url: str) -> str:
    """`url` without its password, fit for a log line or a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


async def open_store(url: str, *, retention_s: float, namespace: str) -> ResultStore:
    """The store `url` names. `namespace` (the topic prefix) prefixes every Redis key and
    channel, so that several deployments can share one Redis."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme == "sqlite":
        from results_api.sqlite_store import SQLiteStore, sqlite_path

        return await SQLiteStore(sqlite_path(url), retention_s=retention_s).open()
    if scheme in ("redis", "rediss"):
        from results_api.redis_store import RedisStore

        return RedisStore(url, retention_s=retention_s, namespace=namespace)
    raise StoreError(f"unsupported store {redacted(url)!r}: expected {ACCEPTED_URLS}")
