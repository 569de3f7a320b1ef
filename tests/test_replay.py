"""Rebuilding the result store from the results topic, against the real broker."""

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from inferq.admin import ensure_topics
from inferq.connections import producer_options
from inferq.devbroker import DevBroker
from results_api.replay import ReplayError, replay
from results_api.settings import ApiSettings
from results_api.sqlite_store import SQLiteStore
from results_api.store import ResultStore, open_store
from schemas import JobEvent, JobStatus, encode_event
from tests.test_store_contract import LONG_S, event, failed, succeeded

STATUSES = list(JobStatus)


def history() -> tuple[list[JobEvent], dict[str, JobEvent]]:
    """Events of 20 jobs in the order they are written, and what the store must keep."""
    singles = [event(f"single-{i:02d}", STATUSES[i % 6], worker=f"w{i}") for i in range(16)]
    queued_succeeded = [event("q-s", JobStatus.QUEUED), succeeded("q-s")]
    succeeded_failed = [succeeded("s-f"), failed("s-f")]
    running_queued = [event("r-q", JobStatus.RUNNING), event("r-q", JobStatus.QUEUED)]
    failed_running = [failed("f-r"), event("f-r", JobStatus.RUNNING)]
    pairs = [queued_succeeded, succeeded_failed, running_queued, failed_running]
    events = [pair[0] for pair in pairs] + singles + [pair[1] for pair in pairs]
    kept = {one.job_id: one for one in singles} | {
        "q-s": queued_succeeded[1],  # moved forward
        "s-f": succeeded_failed[0],  # the first terminal state wins
        "r-q": running_queued[0],  # never moves back
        "f-r": failed_running[0],
    }
    return events, kept


@pytest.fixture
def settings(broker: DevBroker, prefix: str, tmp_path: Path) -> ApiSettings:
    return ApiSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=prefix,
        store=f"sqlite:///{tmp_path / 'rebuilt.db'}",
    )


async def write(
    settings: ApiSettings,
    events: list[JobEvent],
    junk: int = 0,
    ages_s: list[float] | None = None,
) -> None:
    """Write `events` to a 2-partition results topic (keyed by job id), and `junk`
    records that are not events; `ages_s`: how long ago each event was written, as its
    record's timestamp says (now if None)."""
    topic = settings.topics.results
    await ensure_topics(settings, {topic: 2})
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        for i in range(junk):
            await producer.send_and_wait(topic, b"not json", key=f"junk-{i}".encode())
        now_ms = time.time() * 1000
        for one, age_s in zip(events, ages_s or [0.0] * len(events), strict=True):
            record = encode_event(one)
            await producer.send_and_wait(
                topic,
                record.value,
                key=record.key,
                headers=record.headers,
                timestamp_ms=round(now_ms - age_s * 1000),
            )
    finally:
        await producer.stop()


async def open_fresh(settings: ApiSettings) -> ResultStore:
    return await open_store(settings.store, retention_s=LONG_S, namespace=settings.topic_prefix)


async def test_replay_rebuilds_every_job(settings: ApiSettings) -> None:
    events, kept = history()
    await write(settings, events, junk=2)
    store = await open_fresh(settings)
    try:
        assert await replay(settings, store) == len(events) == 24  # the junk is skipped
        for job_id, expected in kept.items():
            assert await store.get(job_id) == expected, job_id
        assert len(kept) == 20
        assert await store.get("junk-0") is None
        assert await replay(settings, store) == 24  # again: nothing changes
        for job_id, expected in kept.items():
            assert await store.get(job_id) == expected, job_id
    finally:
        await store.close()


async def test_a_replayed_job_is_kept_for_its_retention_from_when_it_ended(
    settings: ApiSettings,
) -> None:
    """Not from the replay: a job past its retention stays gone."""
    events = [succeeded("long-ago"), succeeded("yesterday")]
    await write(settings, events, ages_s=[LONG_S + 120, LONG_S - 180])
    store = await open_fresh(settings)
    try:
        assert await replay(settings, store) == 2
        assert await store.get("long-ago") is None
        assert await store.get("yesterday") == succeeded("yesterday")
        # it expires three minutes after it was written plus its retention, counted from
        # the end of the minute it was written in: in three to four minutes
        assert isinstance(store, SQLiteStore)
        [(updated_at,)] = store.db.execute(
            "SELECT updated_at FROM jobs WHERE job_id = 'yesterday'"
        ).fetchall()
        assert 120 < updated_at + LONG_S - time.time() <= 240
    finally:
        await store.close()


async def test_an_empty_topic_replays_nothing(settings: ApiSettings) -> None:
    await write(settings, [])
    store = await open_fresh(settings)
    try:
        async with asyncio.timeout(30):
            assert await replay(settings, store) == 0
    finally:
        await store.close()


async def test_a_missing_topic_is_an_error(settings: ApiSettings) -> None:
    store = await open_fresh(settings)
    try:
        with pytest.raises(ReplayError) as caught:
            await replay(settings, store)
    finally:
        await store.close()
    assert str(caught.value) == f"topic '{settings.topic_prefix}.results' does not exist"


async def test_the_store_rebuild_command(settings: ApiSettings) -> None:
    events, kept = history()
    await write(settings, events)
    env = {
        **os.environ,
        "INFERQ_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "INFERQ_TOPIC_PREFIX": settings.topic_prefix,
        "INFERQ_STORE": settings.store,
    }
    command = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inferq",
        "store",
        "rebuild",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await command.communicate()
    assert command.returncode == 0, err.decode()
    assert out.decode() == (
        f"replayed 24 events from {settings.topic_prefix}.results into {settings.store}\n"
    )
    store = await open_fresh(settings)
    try:
        for job_id, expected in kept.items():
            assert await store.get(job_id) == expected, job_id
    finally:
        await store.close()
