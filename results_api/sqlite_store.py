"""The result store on SQLite: one file, one node.

All access goes through one thread, so the event loop never blocks on disk and the
connection never crosses threads. Each row carries the wall-clock time of its last
change (`updated_at`, unix seconds: it must mean the same after a restart); a row older
than the retention reads as absent, is replaced by any event, and `purge_expired`
deletes it.
"""

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable

from pydantic import ValidationError

from results_api.sqlite_thread import SQLiteThread
from results_api.store import Encoded, StoreError
from schemas import JobEvent
from schemas.status import TERMINAL_RANK, rank

SQLITE_PREFIX = "sqlite://"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    rank INTEGER NOT NULL,
    doc BLOB NOT NULL,
    updated_at REAL NOT NULL
)
"""

_INDEX = "CREATE INDEX IF NOT EXISTS jobs_updated_at ON jobs (updated_at)"

# The same rule as schemas.status.supersedes, on ranks: never leave a terminal state,
# never move down; a row past its retention is as good as absent.
_UPSERT = f"""
INSERT INTO jobs (job_id, rank, doc, updated_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (job_id) DO UPDATE
SET rank = excluded.rank, doc = excluded.doc, updated_at = excluded.updated_at
WHERE (jobs.rank < {TERMINAL_RANK} AND excluded.rank >= jobs.rank) OR jobs.updated_at <= ?5
"""


def sqlite_path(url: str) -> str:
    if not url.startswith(SQLITE_PREFIX):
        raise StoreError(f"unsupported store {url!r}: expected sqlite:///path/to/file.db")
    path = url.removeprefix(SQLITE_PREFIX)
    if path in ("", "/"):
        raise StoreError(f"store {url!r} names no file")
    return path if path == ":memory:" else path.removeprefix("/")


def _setup(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA synchronous=NORMAL")
    # Job ids a client chooses can be random: their upserts touch pages all over the
    # index, which outgrows SQLite's 2 MB default cache after a few hundred thousand jobs
    # (the SDK's ids start with the time, so its jobs land at the index's end).
    db.execute("PRAGMA cache_size=-65536")
    db.execute("PRAGMA mmap_size=268435456")
    db.execute(_SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "updated_at" not in columns:
        # A file from before retention: its jobs count as changed now.
        db.execute(f"ALTER TABLE jobs ADD COLUMN updated_at REAL NOT NULL DEFAULT {time.time()!r}")
    db.execute(_INDEX)


class SQLiteStore:
    def __init__(self, path: str, *, retention_s: float) -> None:
        self._sqlite = SQLiteThread(path, "inferq-store")
        self._call = self._sqlite.call
        self._retention_s = retention_s

    async def open(self) -> "SQLiteStore":
        await self._sqlite.open(_setup)
        return self

    @property
    def db(self) -> sqlite3.Connection:
        return self._sqlite.db

    def _expired_at(self) -> tuple[float, float]:
        """Now, and the time of last change at or before which a row has expired."""
        now = time.time()
        return now, now - self._retention_s

    async def apply(self, events: Iterable[JobEvent]) -> None:
        await self.apply_encoded(
            (e.job_id, e.status, e.model_dump_json(exclude_none=True).encode()) for e in events
        )

    async def apply_encoded(self, events: Iterable[Encoded], at: float | None = None) -> None:
        now, cutoff = self._expired_at()
        changed = now if at is None else min(at, now)
        rows = [(job_id, rank(status), doc, changed, cutoff) for job_id, status, doc in events]
        if rows and changed > cutoff:
            await self._call(lambda: self._write(rows))

    def _write(self, rows: list[tuple[str, int, bytes, float, float]]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(_UPSERT, rows)

    async def get(self, job_id: str) -> JobEvent | None:
        def read() -> bytes | None:
            row = self.db.execute(
                "SELECT doc FROM jobs WHERE job_id = ? AND updated_at > ?",
                (job_id, self._expired_at()[1]),
            ).fetchone()
            return None if row is None else bytes(row[0])

        doc = await self._call(read)
        if doc is None:
            return None
        try:
            return JobEvent.model_validate_json(doc)
        except ValidationError as exc:
            raise StoreError(f"the stored event of job {job_id!r} is not readable: {exc}") from exc

    async def purge_expired(self) -> int:
        def purge() -> int:
            cutoff = self._expired_at()[1]
            return self.db.execute("DELETE FROM jobs WHERE updated_at <= ?", (cutoff,)).rowcount

        return await self._call(purge)

    async def watch(
        self, notify: Callable[[list[str]], None], resync: Callable[[], None], stop: asyncio.Event
    ) -> None:
        """One node, one process: nobody else changes this store."""
        await stop.wait()

    async def ping(self) -> None:
        await self._call(lambda: self.db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self._sqlite.close()
