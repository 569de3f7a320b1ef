"""Deliveries in SQLite, beside the results of a one-node API (see deliveries.py)."""

import sqlite3

from results_api.sqlite_thread import SQLiteThread
from results_api.webhooks.deliveries import Delivery, DeliveryState

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        state TEXT NOT NULL,
        next_try REAL,
        created REAL NOT NULL,
        doc TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_job ON deliveries (job_id)",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_try)",
    "CREATE TABLE IF NOT EXISTS gone_urls (url TEXT PRIMARY KEY)",
]
_PENDING = DeliveryState.PENDING.value


def _setup(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        db.execute(statement)


def _row(d: Delivery) -> tuple[str, str, str, float | None, float, str]:
    return (d.id, d.job_id, d.state.value, d.next_try_at, d.created_at, d.model_dump_json())


def _docs(rows: list[tuple[str]]) -> list[Delivery]:
    return [Delivery.model_validate_json(row[0]) for row in rows]


class SQLiteDeliveries:
    def __init__(self, path: str, retention_s: float) -> None:
        self._sqlite = SQLiteThread(path, "inferq-webhooks")
        self._call = self._sqlite.call
        self._retention_s = retention_s

    async def open(self) -> "SQLiteDeliveries":
        await self._sqlite.open(_setup)
        return self

    @property
    def db(self) -> sqlite3.Connection:
        return self._sqlite.db

    async def add(self, deliveries: list[Delivery]) -> list[Delivery]:
        def write() -> list[Delivery]:
            added = []
            with self.db:
                self.db.execute("BEGIN")
                for d in deliveries:
                    cursor = self.db.execute(
                        "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?, ?, ?)", _row(d)
                    )
                    if cursor.rowcount:
                        added.append(d)
            return added

        return await self._call(write) if deliveries else []

    async def claim(self, now: float, lease_s: float, limit: int) -> list[Delivery]:
        def take() -> list[Delivery]:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                rows = self.db.execute(
                    "SELECT doc FROM deliveries WHERE state = ? AND next_try <= ? "
                    "ORDER BY next_try LIMIT ?",
                    (_PENDING, now, limit),
                ).fetchall()
                claimed = _docs(rows)
                self.db.executemany(
                    "UPDATE deliveries SET next_try = ? WHERE id = ?",
                    [(now + lease_s, d.id) for d in claimed],
                )
            return claimed

        return await self._call(take)

    async def save(self, delivery: Delivery) -> None:
        row = _row(delivery)
        await self._call(
            lambda: self.db.execute(
                "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?)", row
            )
        )

    async def of_job(self, job_id: str) -> list[Delivery]:
        query = "SELECT doc FROM deliveries WHERE job_id = ? ORDER BY created"
        return _docs(await self._call(lambda: self.db.execute(query, (job_id,)).fetchall()))

    async def next_due(self) -> float | None:
        query = "SELECT MIN(next_try) FROM deliveries WHERE state = ?"
        row = await self._call(lambda: self.db.execute(query, (_PENDING,)).fetchone())
        return None if row is None or row[0] is None else float(row[0])

    async def mark_gone(self, url: str) -> None:
        query = "INSERT OR IGNORE INTO gone_urls VALUES (?)"
        await self._call(lambda: self.db.execute(query, (url,)))

    async def is_gone(self, url: str) -> bool:
        query = "SELECT 1 FROM gone_urls WHERE url = ?"
        return await self._call(lambda: self.db.execute(query, (url,)).fetchone()) is not None

    async def retry(self, job_id: str, now: float) -> list[Delivery]:
        again = [d.again(now) for d in await self.of_job(job_id)]

        def write() -> None:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany(
                    "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?)",
                    [_row(d) for d in again],
                )
                self.db.executemany(
                    "DELETE FROM gone_urls WHERE url = ?", [(d.url,) for d in again]
                )

        await self._call(write)
        return again

    async def purge_expired(self, now: float) -> int:
        """Forget finished deliveries created more than the retention ago."""
        query = "DELETE FROM deliveries WHERE state != ? AND created < ?"
        cutoff = now - self._retention_s
        return await self._call(lambda: self.db.execute(query, (_PENDING, cutoff)).rowcount)

    async def close(self) -> None:
        await self._sqlite.close()
