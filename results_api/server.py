"""Serve the app with uvicorn until a stop event is set (signals belong to the caller)."""

import asyncio
import contextlib
import math
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from results_api.app import create_app
from results_api.services import Services
from results_api.settings import ApiSettings


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the process's signal handlers decide when to stop


def uvicorn_config(settings: ApiSettings, app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http="httptools",  # C parser; h11 took a tenth of the API's CPU per request
        timeout_keep_alive=settings.keep_alive_s,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s),
    )


async def serve(
    settings: ApiSettings, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> None:
    """Serve until `stop` is set; in-flight requests finish before this returns.

    The socket is bound first, so `ready` (set once the app has started) means that
    connections are accepted.
    """
    app = create_app(settings, ready=ready)
    config = uvicorn_config(settings, app)
    server = _Server(config)
    sock = config.bind_socket()
    # bind_socket() makes a socket with proto 0, for which asyncio does not turn Nagle off;
    # accepted sockets inherit this, else each response waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def exit_on_stop() -> None:
        await stop.wait()
        services: Services | None = getattr(app.state, "services", None)  # none while starting
        if services is not None:
            services.waiters.close()  # long-polls answer now, within the drain
        server.should_exit = True

    watcher = asyncio.create_task(exit_on_stop())
    try:
        await server.serve(sockets=[sock])
    finally:
        watcher.cancel()
        sock.close()
    if not server.started:
        raise RuntimeError(f"results API failed to start on {settings.host}:{settings.port}")
