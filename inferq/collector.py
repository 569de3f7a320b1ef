"""Python's garbage collector, set for a service process that handles many small messages.

By default CPython (3.11-3.13) runs a young collection every 700 net new container objects
and, every so often, an old one that walks every object alive. A worker or results API in a burst
keeps thousands of jobs alive at once (fetched records, batches, results awaiting the
broker), so those collections walked the same live objects again and again: in a
100,000-job burst of `breast_cancer` the worker spent 31% of its CPU in the collector
(`python -m bench.e2e`, measured with `gc.callbacks`). Reference counting frees almost
everything these processes make; the collector is only there for cycles, so it can run
far less often. The price: each collection walks more, and one of the older generations
(their thresholds are left as they are) can take tens of milliseconds in a burst.
"""

import gc
import logging

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


class CollectorSettings(BaseSettings):
    """Part of the worker's and the results API's settings (env prefix INFERQ_)."""

    model_config = SettingsConfigDict(env_prefix="INFERQ_", extra="ignore")

    gc_threshold: int = Field(
        default=50_000,
        ge=0,
        le=10_000_000,
        description="new container objects between two young garbage collections "
        "(700 in Python 3.11-3.13); objects made at start-up are frozen out of collections. "
        "0 leaves Python's collector as it is",
    )


def tune_collector(threshold: int) -> None:
    """Freeze what start-up made (modules, classes, settings: never garbage) and collect
    only every `threshold` new container objects; 0 changes nothing. For the owner of a
    process: call it at start-up, after the imports."""
    if threshold == 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold)
    log.info(
        "garbage collector: a young collection every %d new objects, %d start-up objects "
        "frozen (INFERQ_GC_THRESHOLD)",
        threshold,
        gc.get_freeze_count(),
    )
