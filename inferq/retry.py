"""Exponential backoff with jitter: the one retry schedule of transient errors."""

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pauses before each retry: `first_s`, doubling up to `max_s`, each drawn uniformly
    from its upper half (jitter, so that retries of many parts do not line up); `retries`
    of them, or without end when None."""

    first_s: float
    max_s: float
    retries: int | None = None

    def pauses(self) -> Iterator[float]:
        delay = self.first_s
        done = 0
        while self.retries is None or done < self.retries:
            yield random.uniform(delay / 2, delay)
            delay = min(delay * 2, self.max_s)
            done += 1
