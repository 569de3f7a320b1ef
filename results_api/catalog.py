"""Which models can take jobs: those whose request topic exists (workers create them)."""

import time

from aiokafka.admin import AIOKafkaAdminClient

from schemas.topics import Topics


class ModelCatalog:
    def __init__(self, admin: AIOKafkaAdminClient, topics: Topics, refresh_s: float = 1.0) -> None:
        self._admin = admin
        self._topics = topics
        self._refresh_s = refresh_s
        self._known: set[str] = set()
        self._listed_at = float("-inf")

    async def served(self, model: str) -> bool:
        topic = self._topics.requests(model)
        if topic in self._known:
            return True
        if time.monotonic() - self._listed_at >= self._refresh_s:
            self._known = set(await self._admin.list_topics())
            self._listed_at = time.monotonic()
        return topic in self._known
