"""Watch the broker: say whether it answers, and put a service's topics back when they vanish.

Every `interval_s` the watch asks the broker for its topics and creates the missing ones
(a development broker that restarts has lost them all). While the broker does not answer
a request within the interval (2 s at least), `problem` says why; services report it as
not ready.
"""

import asyncio
import contextlib
import logging

from aiokafka.errors import KafkaError

from inferq.admin import TopicError, ensure_topics
from inferq.settings import KafkaSettings

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
# Bootstrapping, the one step a cancellation cannot clean up, is two requests (connect,
# metadata): the backstop comes after three request timeouts.
BACKSTOP_REQUESTS = 3


class BrokerWatch:
    def __init__(
        self, settings: KafkaSettings, partitions: dict[str, int], interval_s: float = INTERVAL_S
    ) -> None:
        self._settings = settings
        self._partitions = partitions
        self._interval_s = interval_s
        self.problem: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)

    async def check(self) -> None:
        # Each request ends at aiokafka's own timeout, which closes the connection it
        # opened; cancelling aiokafka's bootstrap half-way would leave that connection to
        # the garbage collector. The outer limit is only a backstop.
        request_s = max(self._interval_s, 2.0)
        try:
            async with asyncio.timeout(BACKSTOP_REQUESTS * request_s):
                await ensure_topics(
                    self._settings, self._partitions, request_timeout_ms=int(request_s * 1000)
                )
        except (KafkaError, TopicError, OSError, TimeoutError) as exc:
            problem = f"the broker at {self._settings.bootstrap_servers} does not answer: " + (
                str(exc) or type(exc).__name__
            )
            if self.problem is None:
                log.warning("%s; retrying every %.1f s", problem, self._interval_s)
            self.problem = problem
            return
        if self.problem is not None:
            log.info("the broker at %s answers again", self._settings.bootstrap_servers)
        self.problem = None
