"""A small HTTP endpoint for probes and Prometheus (the worker serves no API).

A worker process never loads the web stack, so this is plain asyncio: one request per
connection (HTTP/1.1 with `Connection: close`), GET or HEAD, its request line and headers
bounded in size, count and time. A body announced by Content-Length is read and thrown
away before the answer (up to MAX_BODY_BYTES), so that a client still sending it reads the
answer rather than a reset; a larger one, or one with a Transfer-Encoding, is refused
unread. Routes are coroutines returning (status, content type, body).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

Answer = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[], Awaitable[Answer]]

LINE_LIMIT = 8192  # bytes in the request line or in one header line
MAX_HEADER_LINES = 100
MAX_BODY_BYTES = 1 << 20  # a request body over this is refused (413), unread
BODY_CHUNK = 64 * 1024  # read and thrown away this much at a time
FRAMING = (b"content-length", b"transfer-encoding")  # the headers that announce a body
READ_TIMEOUT_S = 5.0  # for the request, then for writing the answer
# Connections served at once; one more is closed at once, unanswered (an answer written to a
# request left unread would reach its client as a reset anyway), so that a flood cannot
# hold the file descriptors the worker's broker connections need.
MAX_CONNECTIONS = 64
TEXT = "text/plain; charset=utf-8"
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Endpoint:
    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes = routes
        self._server: asyncio.Server | None = None
        self.connections = 0  # being served now

    async def start(self, host: str, port: int) -> int:
        """Listen on `host`:`port` (0: a free port); returns the port."""
        self._server = await asyncio.start_server(self._serve, host, port, limit=LINE_LIMIT)
        port_bound: int = self._server.sockets[0].getsockname()[1]
        return port_bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.connections > MAX_CONNECTIONS:
                return  # closed below
            async with asyncio.timeout(READ_TIMEOUT_S):
                method, (status, content_type, body) = await self._answer(reader)
            head = (
                f"HTTP/1.1 {status} {REASONS[status]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                + ("Allow: GET, HEAD\r\n" if status == 405 else "")
                + "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            async with asyncio.timeout(READ_TIMEOUT_S):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # a client too slow, or gone: no answer
        finally:
            self.connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, Answer]:
        """The request's method and the answer to it."""
        try:
            parts = (await reader.readline()).decode("latin-1").split()
            method = parts[0] if parts else ""
            return method, await self._route(reader, parts)
        except ValueError:  # StreamReader.readline: a line over LINE_LIMIT
            return "", (400, TEXT, f"a line over {LINE_LIMIT} bytes\n".encode())

    async def _route(self, reader: asyncio.StreamReader, parts: list[str]) -> Answer:
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, TEXT, b"a request line is METHOD TARGET HTTP/VERSION\n"
        framing: list[tuple[bytes, bytes]] = []  # Content-Length, Transfer-Encoding
        waits = False  # for a 100 Continue before it sends its body
        for _ in range(MAX_HEADER_LINES + 1):  # and the empty line that ends them
            line = await reader.readline()
            if line in (b"", b"\n", b"\r\n"):  # the end of the headers, or of the stream
                break
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or b" " in name or b"\t" in name:
                # a folded line, or a name with blanks: its fields cannot be told apart
                return 400, TEXT, b"a header line is NAME: VALUE, on one line\n"
            if (name := name.lower()) in FRAMING:
                framing.append((name, value.strip()))
            waits |= name == b"expect" and value.strip().lower() == b"100-continue"
        else:
            return 400, TEXT, f"more than {MAX_HEADER_LINES} header lines\n".encode()
        refused = await _read_body(reader, framing, waits)
        if refused is not None:
            return refused
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return 405, TEXT, b"only GET and HEAD\n"
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            return 404, TEXT, f"no such path; try {', '.join(self._routes)}\n".encode()
        try:
            return await route()
        except Exception:  # a bug in a route: say so, and keep serving
            log.exception("%s %s failed", method, target)
            return 500, TEXT, b"internal error: see the worker's log\n"


async def _read_body(
    reader: asyncio.StreamReader, framing: list[tuple[bytes, bytes]], waits: bool
) -> Answer | None:
    """Read the request's body, if any, and throw it away; or the answer refusing it. A
    client that `waits` for a 100 Continue sends none: it gets the answer instead (and
    the connection closes), as HTTP/1.1 allows."""
    if any(name == b"transfer-encoding" for name, _ in framing):
        return 411, TEXT, b"a request body needs a Content-Length (no Transfer-Encoding)\n"
    if not framing:
        return None
    [(_, length), *more] = framing
    if more or not length.isdigit():  # bytes.isdigit: ASCII digits only
        return 400, TEXT, b"one Content-Length, of decimal digits\n"
    digits = length.lstrip(b"0") or b"0"  # int() refuses over 4300 digits
    left = int(digits) if len(digits) <= len(str(MAX_BODY_BYTES)) else MAX_BODY_BYTES + 1
    if left > MAX_BODY_BYTES:
        return 413, TEXT, f"a request body is at most {MAX_BODY_BYTES} bytes\n".encode()
    if waits:
        return None
    while left:
        chunk = await reader.read(min(left, BODY_CHUNK))
        if not chunk:
            return 400, TEXT, b"the body ended before its Content-Length\n"
        left -= len(chunk)
    return None
