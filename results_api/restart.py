"""Consumers that must not die: after an unexpected error, start over from the committed
offsets (what they read again is applied again, which the store and the deliveries take
as the same)."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from inferq.retry import Backoff

log = logging.getLogger(__name__)

# Each restart leaves and joins the consumer group, which pauses the other replicas' share:
# an error that stays (a store that stays read-only) is tried less and less often.
RESTARTS = Backoff(first_s=1.0, max_s=60.0)


async def restarting(
    consume: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    what: str,
    on_failure: Callable[[], None],
) -> None:
    """Run `consume(stop)` until `stop` is set, again after each error (`on_failure` first,
    then a pause of `RESTARTS`, whose growth starts over after a run longer than its top)."""
    pauses = RESTARTS.pauses()
    while not stop.is_set():
        started = time.monotonic()
        try:
            await consume(stop)
        except Exception:
            if time.monotonic() - started > RESTARTS.max_s:
                pauses = RESTARTS.pauses()
            pause = next(pauses)
            log.exception(
                "%s failed; starting over from the committed offsets in %.1f s", what, pause
            )
            on_failure()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
