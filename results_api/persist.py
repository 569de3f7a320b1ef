"""Writes to the store that must not be dropped: tried again while the store is down.

The ingest and the webhook dispatcher commit their offsets only after the store took
what they read, so waiting here (instead of failing) loses nothing and keeps order.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from inferq.retry import Backoff
from results_api.store import StoreUnavailable

log = logging.getLogger(__name__)

STORE_RETRY = Backoff(first_s=0.1, max_s=5.0)


async def stubbornly(write: Callable[[], Awaitable[None]], stop: asyncio.Event, what: str) -> bool:
    """Run `write` until the store takes it (True), or until `stop` is set (False)."""
    pauses = STORE_RETRY.pauses()
    while not stop.is_set():
        try:
            await write()
            return True
        except StoreUnavailable as exc:
            pause = next(pauses)
            log.warning("%s: %s; trying again in %.1f s", what, exc, pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
    return False
