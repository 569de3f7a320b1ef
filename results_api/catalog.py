"""Which models can take jobs: those whose request topic exists (workers create them).

A topic seen once is known for good; an unknown one is looked for in the broker's topic
list, listed again at most once per `refresh_s`. Submits that find the list stale share
one listing (a burst of submits for a new model costs one request, not one each); a
listing that fails raises to every submit that waited for it, and the next submit lists
again.
"""

import asyncio
import time
from typing import Protocol

from schemas.topics import Topics


class Admin(Protocol):
    """What this asks of an AIOKafkaAdminClient."""

    async def list_topics(self) -> list[str]: ...


class ModelCatalog:
    def __init__(self, admin: Admin, topics: Topics, refresh_s: float = 1.0) -> None:
        self._admin = admin
        self._topics = topics
        self._refresh_s = refresh_s
        self._known: set[str] = set()
        self._listed_at = float("-inf")
        self._listing: asyncio.Task[None] | None = None

    async def served(self, model: str) -> bool:
        topic = self._topics.requests(model)
        if topic in self._known:
            return True
        if time.monotonic() - self._listed_at >= self._refresh_s:
            listing = self._listing
            if listing is None:
                listing = self._listing = asyncio.create_task(self._list())
                listing.add_done_callback(self._listed)
            await asyncio.shield(listing)  # a submit that gives up leaves it to the others
        return topic in self._known

    async def _list(self) -> None:
        self._known = set(await self._admin.list_topics())
        self._listed_at = time.monotonic()

    def _listed(self, listing: asyncio.Task[None]) -> None:
        self._listing = None  # a failed listing is not kept: the next submit lists again
        if not listing.cancelled():
            listing.exception()  # retrieved, also when every waiter gave up (no warning)
