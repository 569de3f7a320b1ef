"""Consumers that must not die: after an unexpected error, start over from the committed
offsets (what they read again is applied again, which the store and the deliveries take
as the same)."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 1.0


async def restarting(
    consume: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    what: str,
    on_failure: Callable[[], None],
) -> None:
    """Run `consume(stop)` until `stop` is set, again after each error (`on_failure` first)."""
    while not stop.is_set():
        try:
            await consume(stop)
        except Exception:
            log.exception("%s failed; starting over from the committed offsets", what)
            on_failure()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESTART_PAUSE_S)
