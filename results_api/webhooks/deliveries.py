"""A webhook delivery: one event of one job for one callback URL, and where it stands.

The delivery's `id` is the `webhook-id` header: the same for every try, so receivers can
drop a message they already have. It is derived from the job and the event, so the two
results of a job that ran twice still make one delivery.
"""

import time
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from schemas.messages import CallbackEvent


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    GIVEN_UP = "given_up"


def delivery_id(job_id: str, event: CallbackEvent) -> str:
    return f"msg_{job_id}.{event}"


class Delivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="the `webhook-id` header, the same on every try")
    job_id: str
    event: CallbackEvent
    url: str
    tenant: str | None = None
    body: str = Field(description="the JSON POSTed, the same on every try")
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = Field(default=0, description="tries made")
    last_status: int | None = Field(default=None, description="HTTP status of the last try")
    last_error: str | None = Field(default=None, description="why the last try failed")
    next_try_at: float | None = Field(default=None, description="unix time of the next try")
    delivered_at: float | None = None
    created_at: float = Field(default_factory=time.time)

    def again(self, now: float) -> "Delivery":
        """The delivery made pending again, due at `now`, its schedule restarted."""
        return self.model_copy(
            update={
                "state": DeliveryState.PENDING,
                "attempts": 0,
                "next_try_at": now,
                "delivered_at": None,
                "last_status": None,
                "last_error": None,
            }
        )


class DeliveryStore(Protocol):
    """Where deliveries live between tries: shared by every API replica that shares it.

    `claim` hands a due delivery to one caller at a time (it moves the delivery's next try
    past a lease), so replicas sharing a store do not send the same try twice.
    """

    async def add(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Store the deliveries not stored yet (by id); returns those it stored."""

    async def claim(self, now: float, lease_s: float, limit: int) -> list[Delivery]:
        """Up to `limit` pending deliveries due at `now`, each leased for `lease_s`."""

    async def save(self, delivery: Delivery) -> None:
        """Record the outcome of a try (replaces the stored delivery)."""

    async def of_job(self, job_id: str) -> list[Delivery]: ...

    async def next_due(self) -> float | None:
        """The earliest next try of a pending delivery, or None."""

    async def mark_gone(self, url: str) -> None:
        """A receiver answered 410 Gone: no more tries to this URL."""

    async def is_gone(self, url: str) -> bool: ...

    async def retry(self, job_id: str, now: float) -> list[Delivery]:
        """Make every delivery of a job pending again (due now), and its URLs not gone."""

    async def purge_expired(self, now: float) -> int:
        """Forget finished deliveries older than the retention; returns how many."""

    async def close(self) -> None: ...
