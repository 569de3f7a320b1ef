"""Forget what the retention has expired, now and then (Redis needs none of it: TTLs)."""

import asyncio
import contextlib
import logging
import time

from results_api.store import ResultStore
from results_api.webhooks.service import Webhooks

log = logging.getLogger(__name__)

MAX_INTERVAL_S = 600.0


async def purge_periodically(
    store: ResultStore, webhooks: Webhooks | None, retention_s: float, stop: asyncio.Event
) -> None:
    """Purge every tenth of the retention (at most every 10 minutes) until `stop`."""
    interval = min(retention_s / 10, MAX_INTERVAL_S)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        try:
            jobs = await store.purge_expired()
            deliveries = await webhooks.deliveries.purge_expired(time.time()) if webhooks else 0
        except Exception:  # the store is down for now: purge on the next round
            log.exception("retention purge failed")
            continue
        if jobs or deliveries:
            log.info("retention: forgot %d jobs and %d webhook deliveries", jobs, deliveries)
