"""The broker goes away under load and comes back empty: every part reports it, none hangs
or crashes, and all serve again once the topics are back."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from inferq.demo_models import dataset
from inferq.devbroker import DevBroker, free_port
from inferq.health import BrokerWatch
from inferq.settings import KafkaSettings
from producer import AsyncClient, BrokerUnavailable, ProducerSettings
from results_api.settings import ApiSettings
from schemas import Tensor
from tests.support import GROUP_TIMEOUTS, eventually, running_api, running_worker, wait_terminal
from worker import WorkerSettings

MODEL = "breast_cancer"


def body() -> dict[str, object]:
    features, _ = dataset(MODEL)
    return {"model": MODEL, "inputs": [Tensor.from_numpy("input", features[:1]).model_dump()]}


async def _readiness(api: httpx.AsyncClient, status: int) -> httpx.Response | None:
    response = await api.get("/readyz")
    return response if response.status_code == status else None


async def _accepted(api: httpx.AsyncClient) -> str | None:
    response = await api.post("/v1/jobs", json=body())
    return str(response.json()["job_id"]) if response.status_code == 202 else None


@pytest.mark.timeout(240)
async def test_broker_restart_under_load_reports_unready_then_recovers(
    own_broker: DevBroker, model_repo: Path, tmp_path: Path, prefix: str
) -> None:
    common = {
        "bootstrap_servers": own_broker.bootstrap_servers,
        "topic_prefix": prefix,
        "request_partitions": 2,
        "results_partitions": 2,
        **GROUP_TIMEOUTS,
    }
    worker_settings = WorkerSettings(model_repository=model_repo, **common)
    api_settings = ApiSettings(
        store=f"sqlite:///{tmp_path / 'results.db'}", submit_timeout_s=2.0, **common
    )
    producer_settings = ProducerSettings(submit_timeout_s=1.0, **common)
    features, _ = dataset(MODEL)
    async with running_worker(worker_settings), running_api(api_settings) as api:
        async with AsyncClient(settings=producer_settings) as client:
            before = [await client.submit(MODEL, {"input": features[:1]}) for _ in range(200)]
        for job_id in before:
            assert (await wait_terminal(api, job_id))["status"] == "succeeded"
        # Under load: a burst is on its way through when the broker goes (and its jobs with
        # it: the development broker keeps nothing over a restart).
        async with AsyncClient(settings=producer_settings) as client:
            burst = [await client.submit(MODEL, {"input": features[:1]}) for _ in range(3000)]
        await wait_terminal(api, burst[0])

        own_broker.stop()
        down = await eventually(lambda: _readiness(api, 503))
        assert down.json()["error"]["code"] == "unavailable"
        assert own_broker.bootstrap_servers in down.json()["error"]["message"]
        refused = await api.post("/v1/jobs", json=body())
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "unavailable"
        with pytest.raises(BrokerUnavailable, match="cannot reach the broker"):
            async with AsyncClient(settings=producer_settings):
                pass

        own_broker.start()  # the same port, and empty: no topics, offsets or groups
        await eventually(lambda: _readiness(api, 200), within_s=60)
        after = [await eventually(lambda: _accepted(api), within_s=60) for _ in range(20)]
        for job_id in after:
            assert (await wait_terminal(api, job_id, within_s=60))["status"] == "succeeded"


async def test_a_frozen_broker_is_reported_when_aiokafka_gives_up_on_it(
    own_broker: DevBroker, prefix: str
) -> None:
    """A broker that takes connections but never answers (stopped with SIGSTOP) ends a check
    at aiokafka's own request timeout, which closes the connection it opened; a check cut
    short from outside instead could leave it open for the garbage collector to warn of."""
    settings = KafkaSettings(bootstrap_servers=own_broker.bootstrap_servers, topic_prefix=prefix)
    watch = BrokerWatch(settings, {f"{prefix}.watched": 1}, interval_s=0.5)
    await watch.check()
    assert watch.problem is None
    pid, port = own_broker.pid, own_broker.bootstrap_servers.rpartition(":")[2]
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        await watch.check()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert watch.problem is not None
    assert watch.problem.startswith(
        f"the broker at {own_broker.bootstrap_servers} does not answer: KafkaConnectionError: "
        f"Unable to bootstrap from [('127.0.0.1', {port}, "
    ), watch.problem
    await watch.check()
    assert watch.problem is None


def test_sync_client_without_a_broker_fails_after_its_timeout() -> None:
    # In a process of its own: kafka-python leaves the sockets of a failed bootstrap open,
    # and their ResourceWarnings would surface in whichever test runs next.
    script = (
        "from producer import BrokerUnavailable, Client, ProducerSettings\n"
        f"settings = ProducerSettings(bootstrap_servers='127.0.0.1:{free_port()}', "
        "submit_timeout_s=1.0)\n"
        "try:\n"
        "    Client(settings=settings)\n"
        "except BrokerUnavailable as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith("cannot reach the broker at 127.0.0.1:")
