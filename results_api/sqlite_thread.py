"""One SQLite connection, used from one thread of its own: the event loop never blocks on
disk and the connection never crosses threads."""

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from results_api.store import StoreError, StoreUnavailable

T = TypeVar("T")


class SQLiteThread:
    def __init__(self, path: str, name: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._db: sqlite3.Connection | None = None

    async def open(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        """Connect (WAL, autocommit; `BEGIN` where a transaction is needed), then `setup`."""

        def connect() -> None:
            if self._path != ":memory:":
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            setup(db)
            self._db = db

        await self.call(connect)

    @property
    def db(self) -> sqlite3.Connection:
        """The connection; only for functions passed to `call`."""
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def call(self, fn: Callable[[], T]) -> T:
        """`fn()` on the connection's thread; a locked or unreadable database is the
        store's error (StoreUnavailable when waiting may help)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite store {self._path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite store {self._path}: {exc}") from exc

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self.call(shut)
        self._executor.shutdown(wait=True)
