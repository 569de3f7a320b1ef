"""Refuse request bodies over the configured size with 413, before anything parses them."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from results_api.errors import error_response
from schemas import ErrorCode


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` gets 413 in the one error shape.

    A declared Content-Length is checked before reading; a body without one is read up to
    the limit and handed on only if it stays under it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self._max_bytes:
                await self._refuse(declared, scope, receive, send)
                return
            await self._app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self._max_bytes:
                await self._refuse(size, scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self._app(scope, _replay(messages, receive), send)

    async def _refuse(self, size: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"the request body ({size} bytes) is over the limit of {self._max_bytes} bytes "
            "(INFERQ_MAX_REQUEST_BYTES)",
            {"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
