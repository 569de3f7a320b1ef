"""The results API's own counters (written out by `inferq.prometheus`)."""

from dataclasses import dataclass


@dataclass
class Counters:
    submitted: int = 0  # jobs accepted by POST /v1/jobs
