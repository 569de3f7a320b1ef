"""Try due deliveries, record what came of each try, give up after the last one.

Every API replica runs a courier. It takes due deliveries from the store with a lease
(`DeliveryStore.claim`), so two replicas never send the same try; a replica that dies
mid-try leaves the delivery to be tried again by any replica once the lease ends.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from results_api.store import StoreUnavailable
from results_api.webhooks.attempt import Outcome, Sender
from results_api.webhooks.deliveries import Delivery, DeliveryState, DeliveryStore
from results_api.webhooks.schedule import next_pause, retry_after_s

log = logging.getLogger(__name__)

DeadLetter = Callable[[Delivery], Awaitable[None]]
GONE_BEFORE = "an earlier try to this URL answered 410 Gone: no more tries to it"


@dataclass(frozen=True, slots=True)
class Pace:
    pauses: tuple[float, ...]
    concurrency: int
    poll_s: float
    lease_s: float


class Courier:
    def __init__(
        self, store: DeliveryStore, sender: Sender, pace: Pace, dead_letter: DeadLetter
    ) -> None:
        self._store = store
        self._sender = sender
        self._pace = pace
        self._dead_letter = dead_letter
        self._wake = asyncio.Event()
        self._tries: set[asyncio.Task[None]] = set()
        self.attempts = 0
        self.delivered = 0
        self.given_up = 0

    def wake(self) -> None:
        """New or renewed deliveries may be due: look now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self._round(stop)
                except StoreUnavailable as exc:
                    log.warning("webhook courier: %s; looking again in a while", exc)
                    await self._rest(stop, look=False)
                except Exception:  # deliveries wait in the store: look again next round
                    log.exception("webhook courier round failed; looking again in a while")
                    await self._rest(stop, look=False)
        finally:
            await self._finish_tries()

    async def _round(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        free = self._pace.concurrency - len(self._tries)
        if free > 0:
            for delivery in await self._store.claim(time.time(), self._pace.lease_s, free):
                self._start(delivery)
        await self._rest(stop)

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._try(delivery), name=f"inferq-webhook-{delivery.id}")
        self._tries.add(task)
        task.add_done_callback(self._tried)

    def _tried(self, task: "asyncio.Task[None]") -> None:
        self._tries.discard(task)
        self._wake.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("a webhook try failed unexpectedly", exc_info=exc)

    async def _rest(self, stop: asyncio.Event, look: bool = True) -> None:
        """Until woken, stopped, the next delivery is due (if `look`), or the poll interval
        passed."""
        timeout = self._pace.poll_s
        if look and len(self._tries) < self._pace.concurrency:
            due = await self._store.next_due()
            if due is not None:
                timeout = min(timeout, max(0.0, due - time.time()))
        stopped = asyncio.create_task(stop.wait())
        woken = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({stopped, woken}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            stopped.cancel()
            woken.cancel()

    async def _finish_tries(self) -> None:
        """Let tries in flight end (each is bounded by the webhook timeout); a try cut short
        is made again after its lease."""
        if not self._tries:
            return
        _, late = await asyncio.wait(set(self._tries), timeout=self._sender.timeout_s + 1)
        for task in late:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*late, return_exceptions=True)

    async def _try(self, delivery: Delivery) -> None:
        if await self._store.is_gone(delivery.url):
            outcome = Outcome(False, error=GONE_BEFORE)
        else:
            self.attempts += 1
            outcome = await self._sender.attempt(delivery)
        if outcome.gone:
            await self._store.mark_gone(delivery.url)
        after = settle(delivery, outcome, self._pace.pauses, time.time())
        if after.state is DeliveryState.GIVEN_UP:
            # first the dead letter: if the broker does not take it, the delivery is still
            # leased, and is tried (and dead-lettered) again once the lease ends
            await self._dead_letter(after)
            self.given_up += 1
            log.warning("webhook %s to %s given up: %s", after.id, after.url, after.last_error)
        await self._store.save(after)
        if after.state is DeliveryState.DELIVERED:
            self.delivered += 1


def settle(delivery: Delivery, outcome: Outcome, pauses: tuple[float, ...], now: float) -> Delivery:
    """The delivery once a try had `outcome`."""
    attempts = delivery.attempts + 1
    fields: dict[str, object] = {
        "attempts": attempts,
        "last_status": outcome.status,
        "last_error": outcome.error,
        "next_try_at": None,
    }
    if outcome.delivered:
        fields.update(state=DeliveryState.DELIVERED, delivered_at=now)
        return delivery.model_copy(update=fields)
    pause = None
    if outcome.retry:
        pause = next_pause(pauses, attempts, retry_after_s(outcome.retry_after, now))
    if pause is None:
        if outcome.retry:
            fields["last_error"] = f"{outcome.error}; gave up after {attempts} tries"
        fields["state"] = DeliveryState.GIVEN_UP
    else:
        fields["next_try_at"] = now + pause
    return delivery.model_copy(update=fields)
