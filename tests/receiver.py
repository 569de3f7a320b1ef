"""A webhook receiver on loopback that answers each try as a script says, and records it."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from inferq.devbroker import free_port
from tests.support import START_TIMEOUT_S, eventually

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


@dataclass(frozen=True)
class Reply:
    """What one try gets: a status (with headers), or no answer until the test ends."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass(frozen=True)
class Attempt:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers tries with `script` in order, then with `then` for every later try."""

    def __init__(self, script: list[Reply], then: Reply) -> None:
        self._script = list(script)
        self._then = then
        self.attempts: list[Attempt] = []
        self.released = asyncio.Event()
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.attempts.append(Attempt(headers, body))
        reply = self._script.pop(0) if self._script else self._then
        if reply.hang:
            await self.released.wait()
        start = {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()],
        }
        await send(start)
        await send({"type": "http.response.body", "body": b""})

    async def tried(self, count: int, within_s: float = 30.0) -> list[Attempt]:
        """The first `count` tries, once they have arrived."""

        async def probe() -> list[Attempt] | None:
            return self.attempts[:count] if len(self.attempts) >= count else None

        return await eventually(probe, within_s=within_s)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test process keeps its own signal handlers


@contextlib.asynccontextmanager
async def running_receiver(
    script: list[Reply] | None = None, then: Reply | None = None
) -> AsyncIterator[Receiver]:
    receiver = Receiver(script or [], then or Reply())
    config = uvicorn.Config(
        receiver, host="127.0.0.1", port=receiver.port, lifespan="off", log_level="warning"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool | None:
        if task.done():
            task.result()
        return True if server.started else None

    try:
        await eventually(started, within_s=START_TIMEOUT_S)
        yield receiver
    finally:
        receiver.released.set()
        server.should_exit = True
        await task
