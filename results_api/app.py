"""The FastAPI application."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from inferq import __version__
from results_api import errors
from results_api.limits import BodyLimit
from results_api.routes import router
from results_api.services import running_services
from results_api.settings import ApiSettings


def create_app(settings: ApiSettings, *, ready: asyncio.Event | None = None) -> FastAPI:
    """The app; `ready` is set once its services (store, producer, ingestion) run."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings) as services:
            app.state.services = services
            if ready is not None:
                ready.set()
            yield

    app = FastAPI(
        title="inferq results API",
        version=__version__,
        description="Submit prediction jobs and read their results by job id.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.include_router(router)
    return app
