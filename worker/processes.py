"""Several worker processes on one host: each a full worker in the same consumer groups,
with its own single-threaded ONNX Runtime sessions, so Python work spreads over cores.

The parent forwards SIGINT, SIGTERM and SIGHUP to its children (who live in their own
process group, so a terminal's Ctrl-C reaches them once, through the parent) and exits
when they have.
"""

import asyncio
import multiprocessing
import os
import signal
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from inferq.collector import tune_collector
from inferq.logs import setup_logging
from inferq.signals import stop_on_signals
from worker.main import Worker
from worker.settings import WorkerSettings


def _child(settings: WorkerSettings) -> None:
    os.setpgrp()
    setup_logging()
    tune_collector(settings.gc_threshold)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await Worker(settings).run(stop)

    asyncio.run(main())


def child_settings(settings: WorkerSettings, index: int) -> WorkerSettings:
    """Process `index`'s settings: a name of its own, and the endpoint's port + index (a
    port of 0 stays 0: each process picks a free one)."""
    port = settings.worker_port
    return settings.model_copy(
        update={
            "worker_name": f"{settings.worker_name}-{index}",
            "worker_port": port + index if port else port,
        }
    )


def run_processes(settings: WorkerSettings, processes: int) -> int:
    """Run `processes` workers until they exit; returns the worst exit code."""
    context = multiprocessing.get_context("spawn")
    children: list[BaseProcess] = []
    for index in range(processes):
        own = child_settings(settings, index)
        child = context.Process(target=_child, args=(own,), name=f"inferq-worker-{index}")
        child.start()
        children.append(child)

    def forward(signum: int, _: FrameType | None) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, forward) for sig in stopping}
    try:
        running = list(children)
        while running:
            wait([child.sentinel for child in running])
            if any(child.exitcode not in (None, 0) for child in running):
                forward(signal.SIGTERM, None)  # one failed: stop the others too
            running = [child for child in running if child.exitcode is None]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max(abs(child.exitcode or 0) for child in children)
