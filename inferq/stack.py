"""The local stack: development broker, one worker and the results API in one process."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferq.demo_models import build_demo_models
from inferq.devbroker import DevBroker, free_port
from results_api.server import serve
from results_api.settings import ApiSettings
from worker import Worker, WorkerSettings
from worker.repository import list_models

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stack:
    bootstrap_servers: str
    api_url: str
    models: list[str]


def ensure_demo_models(repo: Path) -> None:
    if not list_models(repo):
        log.info("model repository %s is empty: building the demo models", repo.resolve())
        build_demo_models(repo)


@contextlib.asynccontextmanager
async def local_stack(
    repo: Path,
    *,
    api_port: int | None = None,
    broker_port: int | None = None,
    store: str = "sqlite://:memory:",
    own_session: bool = False,
) -> AsyncIterator[Stack]:
    """Run broker, worker and API until the block exits, then stop them in reverse order
    (`own_session`: as DevBroker's, for a stack that a terminal's Ctrl-C stops)."""
    ensure_demo_models(repo)
    with DevBroker(broker_port, own_session=own_session) as broker:
        port = api_port or free_port()
        servers = broker.bootstrap_servers
        worker = Worker(WorkerSettings(bootstrap_servers=servers, model_repository=repo))
        api = ApiSettings(bootstrap_servers=servers, port=port, store=store)
        stop = asyncio.Event()
        api_started = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            worker_task = tasks.create_task(worker.run(stop))
            api_task = tasks.create_task(serve(api, stop, api_started))
            try:
                await _wait_ready([worker.ready, api_started], [worker_task, api_task])
                yield Stack(
                    broker.bootstrap_servers, f"http://127.0.0.1:{port}", worker.served_models()
                )
            finally:
                stop.set()


async def _wait_ready(events: list[asyncio.Event], tasks: list["asyncio.Task[None]"]) -> None:
    """Wait until every part is ready; if a part stops first, surface its error."""
    ready: asyncio.Future[Any] = asyncio.gather(*(event.wait() for event in events))
    done, _ = await asyncio.wait([ready, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if ready in done:
        return
    ready.cancel()
    for task in done:
        task.result()
    raise RuntimeError("a part of the local stack stopped during start-up")
