"""Job states and the one rule that orders them."""

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELLED}
)

TERMINAL_RANK = 2


def rank(status: JobStatus) -> int:
    """queued 0, running 1, every terminal state 2: states only move up this scale."""
    return TERMINAL_RANK if status.terminal else (0 if status is JobStatus.QUEUED else 1)


def supersedes(new: JobStatus, old: JobStatus) -> bool:
    """Whether an event in state `new` may replace a stored state `old`.

    Terminal states never regress and the first terminal state wins, whatever
    order events arrive in; a non-terminal state only moves forward.
    """
    return rank(old) < TERMINAL_RANK and rank(new) >= rank(old)
