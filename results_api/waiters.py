"""Wake request handlers waiting for news of a job, without polling the store."""

import asyncio
from collections.abc import Iterable


class JobWaiters:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._counts: dict[str, int] = {}

    async def wait(self, job_id: str) -> None:
        """Wait until `notify` names `job_id` (bound it with `asyncio.timeout`)."""
        event = self._events.setdefault(job_id, asyncio.Event())
        self._counts[job_id] = self._counts.get(job_id, 0) + 1
        try:
            await event.wait()
        finally:
            self._counts[job_id] -= 1
            if not self._counts[job_id]:
                del self._counts[job_id]
                del self._events[job_id]

    def notify(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            event = self._events.get(job_id)
            if event is not None:
                event.set()
