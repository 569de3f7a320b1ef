from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from inferq.demo_models import build_demo_models
from inferq.devbroker import DevBroker, free_port
from producer import ProducerSettings
from results_api.settings import ApiSettings
from tests.support import GROUP_TIMEOUTS, running_api, running_worker, unique_prefix
from worker import Worker, WorkerSettings


@pytest.fixture(scope="session")
def broker() -> Iterator[DevBroker]:
    with DevBroker() as started:
        yield started


@pytest.fixture
def own_broker() -> Iterator[DevBroker]:
    """A broker of this test's own on a fixed port, so that it can be restarted (or
    frozen) without disturbing other tests."""
    broker = DevBroker(port=free_port()).start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("models")
    build_demo_models(repo)
    return repo


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own: its topics and groups are unique to it."""
    return unique_prefix()


@pytest.fixture
def worker_settings(broker: DevBroker, model_repo: Path, prefix: str) -> WorkerSettings:
    return WorkerSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=prefix,
        model_repository=model_repo,
        request_partitions=2,
        results_partitions=2,
        refresh_interval_s=0.5,
        **GROUP_TIMEOUTS,
    )


@pytest.fixture
def producer_settings(broker: DevBroker, prefix: str) -> ProducerSettings:
    return ProducerSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix)


@pytest.fixture
def api_settings(broker: DevBroker, prefix: str, tmp_path: Path) -> ApiSettings:
    return ApiSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=prefix,
        store=f"sqlite:///{tmp_path / 'results.db'}",
        request_partitions=2,
        results_partitions=2,
        **GROUP_TIMEOUTS,
    )


@pytest.fixture
async def worker(worker_settings: WorkerSettings) -> AsyncIterator[Worker]:
    async with running_worker(worker_settings) as started:
        yield started


@pytest.fixture
async def api(api_settings: ApiSettings, worker: Worker) -> AsyncIterator[httpx.AsyncClient]:
    """The results API over real HTTP, with a worker serving the demo models."""
    async with running_api(api_settings) as http:
        yield http


@pytest.fixture(scope="session")
def torch_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """minilm (real weights, tokenizer) and the resnet18-shaped network, exported by torch."""
    from inferq.minilm import build_minilm
    from inferq.resnet import build_resnet18

    repo = tmp_path_factory.mktemp("torch-models")
    build_minilm(repo)
    build_resnet18(repo)
    return repo
