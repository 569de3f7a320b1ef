"""The worker's /healthz, /readyz and /metrics, and the small HTTP endpoint serving them."""

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from inferq.demo_models import dataset
from producer import AsyncClient, ProducerSettings
from tests.support import eventually, running_worker
from tests.test_worker_failures import produce_raw
from worker import Worker, WorkerSettings
from worker.endpoint import MAX_BODY_BYTES, MAX_CONNECTIONS, Answer, Endpoint
from worker.probes import unready
from worker.processes import child_settings

MODEL = "breast_cancer"
JOBS = 12


async def exchange(port: int, request: bytes) -> bytes:
    """Send `request` as it is and read the answer to its end (the endpoint closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


@pytest.fixture
async def endpoint() -> AsyncIterator[int]:
    async def hello() -> Answer:
        return 200, "text/plain", b"hello\n"

    async def boom() -> Answer:
        raise RuntimeError("a bug")

    served = Endpoint({"/hello": hello, "/boom": boom})
    port = await served.start("127.0.0.1", 0)
    try:
        yield port
    finally:
        await served.close()


async def test_the_endpoint_answers_get_and_head_and_refuses_the_rest(endpoint: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{endpoint}") as http:
        got = await http.get("/hello?verbose=1")
        assert (got.status_code, got.text, got.headers["content-type"]) == (
            200,
            "hello\n",
            "text/plain",
        )
        head = await http.head("/hello")
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "6")
        missing = await http.get("/nope")
        assert (missing.status_code, missing.text) == (404, "no such path; try /hello, /boom\n")
        for path in ("/hello", "/nope"):
            posted = await http.post(path, content=b"x")
            assert (posted.status_code, posted.headers["allow"]) == (405, "GET, HEAD")
        failed = await http.get("/boom")
        assert (failed.status_code, failed.text) == (500, "internal error: see the worker's log\n")

    garbled = await exchange(endpoint, b"hello there\r\n\r\n")
    assert garbled.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert garbled.endswith(b"\r\n\r\na request line is METHOD TARGET HTTP/VERSION\n")
    many = b"GET /hello HTTP/1.1\r\n" + b"X: y\r\n" * 100 + b"\r\n"
    assert (await exchange(endpoint, many)).endswith(b"\r\n\r\nhello\n")
    flood = b"GET /hello HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n"
    assert (await exchange(endpoint, flood)).endswith(b"more than 100 header lines\n")
    long_line = await exchange(endpoint, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert long_line.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert long_line.endswith(b"a line over 8192 bytes\n")


async def test_the_endpoint_reads_a_body_before_answering_and_refuses_what_it_cannot(
    endpoint: int,
) -> None:
    # 200 KB is more than the sockets buffer: a body left unread resets the connection
    # while its client still sends it, and the client never reads its answer
    for size in (200_000, MAX_BODY_BYTES):
        head = f"POST /hello HTTP/1.1\r\nContent-Length: {size}\r\n\r\n".encode()
        posted = await exchange(endpoint, head + b"x" * size)
        assert posted.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
        assert posted.endswith(b"\r\n\r\nonly GET and HEAD\n")
    got = await exchange(endpoint, b"GET /hello HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert got.endswith(b"\r\n\r\nhello\n")

    refused = {
        f"Content-Length: {MAX_BODY_BYTES + 1}": (
            b"413 Content Too Large",
            b"a request body is at most 1048576 bytes\n",
        ),
        "Content-Length: " + "0" * 5000 + "1" * 8: (
            b"413 Content Too Large",
            b"a request body is at most 1048576 bytes\n",
        ),
        "Transfer-Encoding: chunked": (
            b"411 Length Required",
            b"a request body needs a Content-Length (no Transfer-Encoding)\n",
        ),
        "Content-Length: 3\r\nContent-Length: 3": (
            b"400 Bad Request",
            b"one Content-Length, of decimal digits\n",
        ),
        "Content-Length: -3": (b"400 Bad Request", b"one Content-Length, of decimal digits\n"),
        # a continuation line (obsolete folding), a blank line that is not empty, a name
        # with blanks: none may hide a Content-Length, nor end the headers early
        "X-A: 1\r\n Content-Length: 5": (
            b"400 Bad Request",
            b"a header line is NAME: VALUE, on one line\n",
        ),
        "X-A: 1\r\n \r\nContent-Length: 5": (
            b"400 Bad Request",
            b"a header line is NAME: VALUE, on one line\n",
        ),
        "Content-Length : 5": (b"400 Bad Request", b"a header line is NAME: VALUE, on one line\n"),
        "no colon here": (b"400 Bad Request", b"a header line is NAME: VALUE, on one line\n"),
    }
    for header, (status, text) in refused.items():
        answer = await exchange(endpoint, f"POST /hello HTTP/1.1\r\n{header}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 " + status + b"\r\n")
        assert answer.endswith(b"\r\n\r\n" + text)


async def test_a_client_waiting_for_100_continue_gets_the_answer_instead(endpoint: int) -> None:
    """curl sends `Expect: 100-continue` before a body over 1 KiB: the body never comes
    until the server says so, and the endpoint answers without it."""
    head = b"POST /hello HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    answer = await exchange(endpoint, head)
    assert answer.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert answer.endswith(b"\r\n\r\nonly GET and HEAD\n")


async def test_connections_over_the_limit_are_closed_unanswered() -> None:
    async def hello() -> Answer:
        return 200, "text/plain", b"hello\n"

    async def served_now(count: int) -> bool | None:
        return True if served.connections == count else None

    served = Endpoint({"/hello": hello})
    port = await served.start("127.0.0.1", 0)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CONNECTIONS)]
    try:
        await eventually(lambda: served_now(MAX_CONNECTIONS))  # each one sending nothing
        try:  # closed as it came: before or after the request arrived
            answer = await exchange(port, b"GET /hello HTTP/1.1\r\n\r\n")
        except ConnectionResetError:
            answer = b""
        assert answer == b""
    finally:
        for _, writer in held:
            writer.close()
    await eventually(lambda: served_now(0))
    again = await exchange(port, b"GET /hello HTTP/1.1\r\n\r\n")
    assert again.startswith(b"HTTP/1.1 200 OK\r\n")
    await served.close()


def metric(text: str, name: str) -> float:
    [value] = re.findall(rf'^{name}{{model="{MODEL}"}} (\S+)$', text, re.MULTILINE)
    return float(value)


async def test_a_worker_reports_readiness_and_what_it_did(
    worker_settings: WorkerSettings, producer_settings: ProducerSettings
) -> None:
    settings = worker_settings.model_copy(update={"models": [MODEL], "worker_port": 0})
    async with running_worker(settings) as worker:
        assert worker.port is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as http:
            health = await http.get("/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})

            async def ready() -> httpx.Response | None:
                answer = await http.get("/readyz")
                return answer if answer.status_code == 200 else None

            assert (await eventually(ready)).json() == {"status": "ready"}

            features, _ = dataset(MODEL)
            async with AsyncClient(settings=producer_settings) as client:
                for i in range(JOBS):
                    await client.submit(MODEL, {"input": features[i : i + 1]})
            await produce_raw(settings, settings.topics.requests(MODEL), b"bad-1", b"{not json")

            async def settled() -> str | None:
                text = (await http.get("/metrics")).text
                done = metric(text, "inferq_worker_batch_jobs_total")
                rejected = metric(text, "inferq_worker_rejected_total")
                return text if (done, rejected) == (JOBS, 1) else None

            text = await eventually(settled)
    assert "inferq_worker_ready 1" in text.splitlines()
    assert metric(text, "inferq_worker_assigned_partitions") == 2
    assert 1 <= metric(text, "inferq_worker_batches_total") <= JOBS
    assert metric(text, "inferq_worker_cancelled_total") == 0
    assert metric(text, "inferq_worker_commit_failures_total") == 0
    assert metric(text, "inferq_worker_lag_records") == 0


async def test_readiness_says_why_not(worker_settings: WorkerSettings) -> None:
    worker = Worker(worker_settings)
    stop = asyncio.Event()
    assert unready(worker, stop) == "loading the models and creating the topics"
    stop.set()
    assert unready(worker, stop) == "stopping: finishing the jobs it fetched"


def test_each_worker_process_listens_on_a_port_of_its_own(
    worker_settings: WorkerSettings,
) -> None:
    settings = worker_settings.model_copy(update={"worker_name": "pool", "worker_port": 9100})
    ports = [child_settings(settings, i).worker_port for i in range(3)]
    assert ports == [9100, 9101, 9102]
    anywhere = settings.model_copy(update={"worker_port": 0})
    assert [child_settings(anywhere, i).worker_port for i in range(2)] == [0, 0]
    with pytest.raises(ValueError, match="worker_port 65535 with 2 processes needs ports up to"):
        WorkerSettings(worker_port=65535, processes=2)
