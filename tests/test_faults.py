"""Faults with real processes, real signals and the real broker: a worker killed or stopped
in the middle of a burst, the results API killed and started again. No job is lost.

"The middle" is decided by observing progress, never by sleeping: while the burst is being
submitted, the fault waits until results have come back (on the results topic, or ingested
by the API) and strikes; the second half of the burst is held back until it has, so the
fault always lands with jobs still to come.
"""

import asyncio
import contextlib
import signal
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from inferq.demo_models import dataset
from inferq.devbroker import DevBroker, free_port
from producer import AsyncClient, ProducerSettings
from results_api.settings import ApiSettings
from tests.processes import (
    ResultsWatcher,
    Supervisor,
    base_settings,
    read_jobs,
    serving,
    stored_statuses,
)
from tests.support import eventually, running_api

T = TypeVar("T")

MODEL = "breast_cancer"
CHUNK = 100  # jobs submitted between two turns of the event loop during a burst
SERVED_BEFORE_FAULT = 100  # results a worker must have written before it is killed or stopped
# A SIGTERMed worker drains for at most INFERQ_DRAIN_TIMEOUT_S (`drain_timeout_s`, being
# added; a worker without the setting ignores the variable), then closes its producer and
# leaves its groups. DRAIN_BOUND_S bounds the wait for its exit generously: it is not a
# measurement, and no test asserts how long the drain took.
DRAIN_TIMEOUT_S = 20.0
DRAIN_BOUND_S = DRAIN_TIMEOUT_S + 40.0
FINISH_WITHIN_S = 90.0  # for a burst's last results after a fault, on 2 busy cores


@pytest.fixture
def supervisor(
    broker: DevBroker, prefix: str, model_repo: Path, tmp_path: Path
) -> Iterator[Supervisor]:
    """Starts this test's worker and API processes and stops every one at its end."""
    settings = {
        **base_settings(broker.bootstrap_servers, prefix),
        "model_repository": model_repo,
        "models": [MODEL],
        "refresh_interval_s": 0.5,
    }
    with Supervisor(tmp_path / "logs", settings) as started:
        yield started


async def submit(client: AsyncClient, count: int) -> list[str]:
    """`count` breast_cancer jobs of one row each, sent without waiting for acks."""
    features, _ = dataset(MODEL)
    rows = len(features)
    return [
        await client.submit(MODEL, {"input": features[i % rows : i % rows + 1]})
        for i in range(count)
    ]


async def burst_with_fault(
    client: AsyncClient, count: int, fault: Callable[[], Coroutine[Any, Any, T]]
) -> tuple[list[str], T]:
    """Submit `count` jobs while `fault` waits for progress and strikes; the second half is
    submitted only once it has. Returns the job ids (flushed) and what `fault` returned."""
    striking = asyncio.create_task(fault())
    try:
        ids: list[str] = []
        for start in range(0, count, CHUNK):
            if start >= count // 2:
                await striking
            ids += await submit(client, min(CHUNK, count - start))
            # A turn of the loop, not a wait: `submit` does not yield while the producer's
            # buffer has room, and the fault's watch must run while the burst goes on.
            await asyncio.sleep(0)
        await client.flush()
        return ids, await striking
    finally:
        if not striking.done():
            striking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await striking


async def warm_up(client: AsyncClient, results: ResultsWatcher, workers: set[str]) -> list[str]:
    """Submit jobs until each of `workers` has written a result: each has partitions of the
    request topic. Returns the warm-up jobs' ids."""
    submitted: list[str] = []

    async def each_served() -> bool | None:
        submitted.extend(await submit(client, 8))
        await client.flush()
        return await results.holds(lambda: workers <= set(results.by_worker), 2.0) or None

    await eventually(each_served, within_s=60)
    await results.until_finished(submitted, 30)
    return submitted


def succeeded_counts(results: ResultsWatcher, job_ids: list[str]) -> Counter[int]:
    """How many jobs had 0, 1, 2... `succeeded` events on the results topic."""
    return Counter(results.events[job_id, "succeeded"] for job_id in job_ids)


@pytest.mark.timeout(180)
async def test_sigkill_of_one_of_two_workers_mid_burst_loses_no_job(
    supervisor: Supervisor,
    broker: DevBroker,
    api_settings: ApiSettings,
    producer_settings: ProducerSettings,
    tmp_path: Path,
) -> None:
    burst = 5000
    victim, survivor = supervisor.worker("w0"), supervisor.worker("w1")
    async with running_api(api_settings) as api:
        await serving(api, MODEL, {"w0", "w1"})
        async with (
            ResultsWatcher(broker.bootstrap_servers, api_settings.topics.results) as results,
            AsyncClient(settings=producer_settings) as client,
        ):
            warm = await warm_up(client, results, {"w0", "w1"})
            served_before = results.by_worker["w0"]

            async def kill_w0() -> int:
                await results.until(
                    lambda: results.by_worker["w0"] >= served_before + SERVED_BEFORE_FAULT,
                    "w0 serving the burst",
                    FINISH_WITHIN_S,
                )
                assert victim.kill() == -signal.SIGKILL
                return results.terminal.total() - len(warm)

            ids, finished_at_kill = await burst_with_fault(client, burst, kill_w0)
            await results.until_finished(ids, FINISH_WITHIN_S)
            jobs = await read_jobs(api, ids, FINISH_WITHIN_S)
            served = succeeded_counts(results, ids)
            by_worker = dict(results.by_worker)
        assert survivor.running, survivor.describe()

    print(
        f"w0 killed after {finished_at_kill} of {burst} results; succeeded events per job: "
        f"{dict(served)}; terminal events by worker: {by_worker}"
    )
    assert len(set(ids)) == burst
    assert Counter(job["status"] for job in jobs.values()) == {"succeeded": burst}
    # At-least-once: a job may have run twice (on w0, its result unacknowledged or its
    # offset uncommitted, then again on w1), but every job has a `succeeded` event...
    assert served[0] == 0
    # ...and every terminal event of the burst is one.
    burst_ids = set(ids)
    assert {status for job_id, status in results.events if job_id in burst_ids} == {"succeeded"}
    # One row per job in the store, each in its terminal state.
    assert stored_statuses(tmp_path / "results.db") == {"succeeded": burst + len(warm)}
    assert await survivor.terminate(DRAIN_BOUND_S) == 0, survivor.describe()


@pytest.mark.timeout(180)
async def test_results_api_killed_mid_burst_and_started_again_serves_every_job(
    supervisor: Supervisor, producer_settings: ProducerSettings, tmp_path: Path
) -> None:
    burst = 3000
    store = tmp_path / "api.db"
    port = free_port()
    worker = supervisor.worker("w0")
    api = supervisor.api("api", store, port)
    await api.ready()
    async with api.client() as http:
        await serving(http, MODEL, {"w0"})
        async with AsyncClient(settings=producer_settings) as client:

            async def results_ingested() -> float | None:
                # Each job has a `queued` event: more events than half the jobs have means
                # that results of the burst were ingested.
                text = (await http.get("/metrics")).text
                line = next(x for x in text.splitlines() if x.startswith("inferq_ingested_events"))
                count = float(line.split()[1])
                return count if count >= burst // 2 + SERVED_BEFORE_FAULT else None

            async def kill_api() -> float:
                ingested = await api.until(results_ingested, "ingesting results", FINISH_WITHIN_S)
                assert api.kill() == -signal.SIGKILL
                return ingested

            ids, ingested_at_kill = await burst_with_fault(client, burst, kill_api)

    again = supervisor.api("api-again", store, port)
    await again.ready()
    async with again.client() as http:
        jobs = await read_jobs(http, ids, FINISH_WITHIN_S)

    print(f"API killed after ingesting {ingested_at_kill:.0f} events of {2 * burst}")
    assert Counter(job["status"] for job in jobs.values()) == {"succeeded": burst}
    assert stored_statuses(store) == {"succeeded": burst}
    assert await again.terminate(DRAIN_BOUND_S) == 0, again.describe()
    assert await worker.terminate(DRAIN_BOUND_S) == 0, worker.describe()


@pytest.mark.timeout(180)
async def test_sigterm_drains_a_worker_under_load_and_the_next_worker_runs_the_rest(
    supervisor: Supervisor,
    broker: DevBroker,
    api_settings: ApiSettings,
    producer_settings: ProducerSettings,
    tmp_path: Path,
) -> None:
    burst = 3000
    draining = supervisor.worker("a", drain_timeout_s=DRAIN_TIMEOUT_S)
    async with running_api(api_settings) as api:
        await serving(api, MODEL, {"a"})
        async with (
            ResultsWatcher(broker.bootstrap_servers, api_settings.topics.results) as results,
            AsyncClient(settings=producer_settings) as client,
        ):

            async def stop_a() -> int:
                await results.until(
                    lambda: results.by_worker["a"] >= SERVED_BEFORE_FAULT,
                    "a serving the burst",
                    FINISH_WITHIN_S,
                )
                draining.signal(signal.SIGTERM)
                return results.by_worker["a"]

            ids, served_at_sigterm = await burst_with_fault(client, burst, stop_a)
            assert await draining.exited(DRAIN_BOUND_S) == 0, draining.describe()
            successor = supervisor.worker("b")
            await results.until_finished(ids, FINISH_WITHIN_S)
            jobs = await read_jobs(api, ids, FINISH_WITHIN_S)
            served = succeeded_counts(results, ids)
            by_worker = dict(results.by_worker)

    print(f"a stopped after {served_at_sigterm} of {burst} results; by worker: {by_worker}")
    assert "SIGTERM: draining" in draining.log()
    assert Counter(job["status"] for job in jobs.values()) == {"succeeded": burst}
    # A drain that ends within its limit commits every job it finished: b runs none again.
    assert served == {1: burst}
    assert by_worker.keys() <= {"a", "b"}
    assert sum(by_worker.values()) == burst
    assert stored_statuses(tmp_path / "results.db") == {"succeeded": burst}
    assert await successor.terminate(DRAIN_BOUND_S) == 0, successor.describe()
