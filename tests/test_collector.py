"""The garbage collector setting of the worker and the results API processes."""

import gc
import logging
import re
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from inferq.collector import CollectorSettings, tune_collector
from results_api.settings import ApiSettings
from worker.settings import WorkerSettings


@pytest.fixture
def collector() -> Iterator[None]:
    """Python's collector as it was before the test, again after it."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector")
def test_tuning_freezes_start_up_objects_and_sets_the_young_threshold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    with caplog.at_level(logging.INFO, logger="inferq.collector"):
        tune_collector(12_345)
    assert gc.get_threshold() == (12_345, *thresholds[1:])
    assert gc.get_freeze_count() > 1000  # what this test process made before
    [message] = caplog.messages
    frozen = re.fullmatch(
        r"garbage collector: a young collection every 12345 new objects, (\d+) start-up "
        r"objects frozen \(INFERQ_GC_THRESHOLD\)",
        message,
    )
    assert frozen is not None, message
    assert int(frozen[1]) > 1000


@pytest.mark.usefixtures("collector")
def test_zero_leaves_the_collector_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    with caplog.at_level(logging.INFO, logger="inferq.collector"):
        tune_collector(0)
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
    assert caplog.messages == []


@pytest.mark.parametrize("settings", [WorkerSettings, ApiSettings, CollectorSettings])
def test_the_threshold_is_read_from_the_environment(
    settings: type[CollectorSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERQ_GC_THRESHOLD", raising=False)
    assert settings().gc_threshold == 50_000
    monkeypatch.setenv("INFERQ_GC_THRESHOLD", "0")
    assert settings().gc_threshold == 0
    monkeypatch.setenv("INFERQ_GC_THRESHOLD", "-1")
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        settings()
