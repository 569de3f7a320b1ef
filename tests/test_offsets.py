"""The offset tracker: commits never pass an unfinished record."""

from worker.offsets import OffsetTracker


def test_commit_point_waits_for_the_first_unfinished_offset() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.started("p0", offset)
    tracker.finished("p0", 12)
    tracker.finished("p0", 11)
    assert tracker.committable() == {}
    assert tracker.in_flight == 2  # 11 and 12 are acknowledged
    tracker.finished("p0", 10)
    assert tracker.committable() == {"p0": 13}
    tracker.committed({"p0": 13})
    assert tracker.committable() == {}
    tracker.finished("p0", 13)
    assert tracker.committable() == {"p0": 14}
    assert tracker.in_flight == 0


def test_partitions_are_independent_and_forgotten() -> None:
    tracker = OffsetTracker()
    tracker.started("p0", 0)
    tracker.started("p1", 5)
    tracker.finished("p1", 5)
    assert tracker.committable() == {"p1": 6}
    tracker.forget(["p0", "p1"])
    tracker.finished("p0", 0)  # finished after the partition was revoked: ignored
    assert tracker.committable() == {}
    assert tracker.in_flight == 0
