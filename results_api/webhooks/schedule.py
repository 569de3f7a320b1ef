"""When to try a delivery again: the configured schedule, jitter, and `Retry-After`."""

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

JITTER = 0.2
MAX_RETRY_AFTER_S = 6 * 3600.0


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit alone takes "²", which float() does not
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year past datetime's
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def next_pause(pauses: tuple[float, ...], attempts: int, retry_after: float | None) -> float | None:
    """The pause before the next try after `attempts` tries, or None when the schedule is
    spent. A `Retry-After` longer than the pause is honoured, up to 6 hours."""
    if attempts > len(pauses):
        return None
    pause = pauses[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        pause = max(pause, min(retry_after, MAX_RETRY_AFTER_S))
    return pause


def iso(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
