"""The result store: a view of the results topic, one row per job, never regressing.

SQLite on disk by default. All access goes through one thread, so the event loop
never blocks on disk and the connection never crosses threads.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import ValidationError

from schemas import JobEvent, JobStatus
from schemas.status import TERMINAL_RANK, rank

SQLITE_PREFIX = "sqlite://"

T = TypeVar("T")


class StoreError(ValueError):
    pass


# What the store keeps of an event: its job, its state, and its JSON as it travelled.
Encoded = tuple[str, JobStatus, bytes]


class ResultStore(Protocol):
    async def apply(self, events: Iterable[JobEvent]) -> None:
        """Record events; a job keeps its most advanced state (schemas.status.supersedes)."""

    async def apply_encoded(self, events: Iterable[Encoded]) -> None:
        """`apply` for events whose JSON is at hand (as read from the results topic)."""

    async def get(self, job_id: str) -> JobEvent | None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    rank INTEGER NOT NULL,
    doc BLOB NOT NULL
)
"""

# The same rule as schemas.status.supersedes, on ranks: never leave a terminal state,
# never move down.
_UPSERT = f"""
INSERT INTO jobs (job_id, rank, doc) VALUES (?, ?, ?)
ON CONFLICT (job_id) DO UPDATE SET rank = excluded.rank, doc = excluded.doc
WHERE jobs.rank < {TERMINAL_RANK} AND excluded.rank >= jobs.rank
"""


def sqlite_path(url: str) -> str:
    if not url.startswith(SQLITE_PREFIX):
        raise StoreError(f"unsupported store {url!r}: expected sqlite:///path/to/file.db")
    path = url.removeprefix(SQLITE_PREFIX)
    if path in ("", "/"):
        raise StoreError(f"store {url!r} names no file")
    return path if path == ":memory:" else path.removeprefix("/")


class SQLiteStore:
    def __init__(self, path: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inferq-store")
        self._path = path
        self._db: sqlite3.Connection | None = None

    async def open(self) -> "SQLiteStore":
        await self._call(self._connect)
        return self

    def _connect(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # Job ids are random: upserts touch pages all over the index, which outgrows
        # SQLite's 2 MB default cache after a few hundred thousand jobs.
        db.execute("PRAGMA cache_size=-65536")
        db.execute("PRAGMA mmap_size=268435456")
        db.execute(_SCHEMA)
        self._db = db

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def apply(self, events: Iterable[JobEvent]) -> None:
        await self.apply_encoded(
            (e.job_id, e.status, e.model_dump_json(exclude_none=True).encode()) for e in events
        )

    async def apply_encoded(self, events: Iterable[Encoded]) -> None:
        rows = [(job_id, rank(status), doc) for job_id, status, doc in events]
        if rows:
            await self._call(lambda: self._write(rows))

    def _write(self, rows: list[tuple[str, int, bytes]]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(_UPSERT, rows)

    async def get(self, job_id: str) -> JobEvent | None:
        def read() -> bytes | None:
            row = self.db.execute("SELECT doc FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            return None if row is None else bytes(row[0])

        doc = await self._call(read)
        if doc is None:
            return None
        try:
            return JobEvent.model_validate_json(doc)
        except ValidationError as exc:
            raise StoreError(f"the stored event of job {job_id!r} is not readable: {exc}") from exc

    async def ping(self) -> None:
        await self._call(lambda: self.db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._call(shut)
        self._executor.shutdown(wait=True)


async def open_store(url: str) -> ResultStore:
    return await SQLiteStore(sqlite_path(url)).open()
