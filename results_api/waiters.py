"""Wake request handlers waiting for news of a job, without polling the store.

Register first, then read the store, then wait: an event that lands between the read
and the wait still wakes the handler.
"""

import asyncio
import contextlib
from collections.abc import Iterable, Iterator


class JobWaiters:
    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self.closing = False  # the server stops: long-polls answer what they have

    def close(self) -> None:
        """Wake every waiter for good: the server is stopping, and a long-poll that waited
        on would hold the drain and then be cut off without an answer."""
        self.closing = True
        self.wake_all()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `notify` names `job_id` while the block runs."""
        event = asyncio.Event()
        watchers = self._watchers.setdefault(job_id, set())
        watchers.add(event)
        try:
            yield event
        finally:
            watchers.discard(event)
            if not watchers:
                del self._watchers[job_id]

    @property
    def watched(self) -> int:
        """Jobs someone is waiting for."""
        return len(self._watchers)

    def notify(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            for event in self._watchers.get(job_id, ()):
                event.set()

    def wake_all(self) -> None:
        """Wake every waiter: news of any job may have been missed."""
        for watchers in self._watchers.values():
            for event in watchers:
                event.set()
