"""The SDK clients report each record the broker did not acknowledge, once: against a
broker of the test's own, frozen with SIGSTOP."""

import asyncio
import contextlib
import logging
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kafka import KafkaProducer

from inferq.admin import ensure_topics
from inferq.demo_models import dataset
from inferq.devbroker import DevBroker
from producer import AsyncClient, BrokerUnavailable, Client, ProducerSettings
from tests.support import read_all

MODEL = "breast_cancer"
GATE_S = 30.0  # a held record goes on after this at the latest, should the test fail first


def not_acknowledged(job_id: str) -> str:
    """The start of `flush`'s error for the records (request, queued event) of one job."""
    return re.escape(f"1 job(s) not acknowledged by the broker ({job_id}): ")


def settings_for(broker: DevBroker, prefix: str) -> ProducerSettings:
    return ProducerSettings(
        bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix, submit_timeout_s=1.0
    )


async def topics(settings: ProducerSettings) -> None:
    """The model's request topic and the results topic, of one partition each."""
    await ensure_topics(settings, {settings.topics.requests(MODEL): 1, settings.topics.results: 1})


def inputs() -> dict[str, Any]:
    features, _ = dataset(MODEL)
    return {"input": features[:1]}


@contextlib.contextmanager
def frozen(broker: DevBroker) -> Iterator[None]:
    """The broker takes connections and answers nothing while the block runs."""
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.pid, signal.SIGCONT)


@pytest.mark.timeout(60)
def test_the_sync_client_reports_records_the_broker_never_acknowledged(
    own_broker: DevBroker, prefix: str
) -> None:
    settings = settings_for(own_broker, prefix)
    asyncio.run(topics(settings))
    client = Client(settings=settings)
    try:
        client.submit(MODEL, inputs())
        client.flush()  # the topics' metadata is known from here on
        with frozen(own_broker):
            job_id = client.submit(MODEL, inputs())  # handed over: its answer is awaited
            # kafka-python's own flush returns once the batches are given up, raising nothing
            with pytest.raises(BrokerUnavailable, match=f"^{not_acknowledged(job_id)}") as caught:
                client.flush()
            assert caught.value.job_ids == (job_id,)
        client.flush()  # reported once
        later = client.submit(MODEL, inputs())
        client.flush()
    finally:
        client.close()
    requests = asyncio.run(read_all(settings.bootstrap_servers, settings.topics.requests(MODEL), 2))
    assert later.encode() in {key for _, key in requests}


async def test_the_async_client_reports_a_refusal_once(own_broker: DevBroker, prefix: str) -> None:
    settings = settings_for(own_broker, prefix)
    await topics(settings)
    async with AsyncClient(settings=settings) as client:
        await client.submit(MODEL, inputs())
        await client.flush()
        with frozen(own_broker):
            job_id = await client.submit(MODEL, inputs())
            with pytest.raises(BrokerUnavailable, match=f"^{not_acknowledged(job_id)}") as caught:
                await client.flush()
            assert caught.value.job_ids == (job_id,)
        await client.flush()  # nothing new: reported once
        later = await client.submit(MODEL, inputs())
        await client.flush()
    requests = await read_all(settings.bootstrap_servers, settings.topics.requests(MODEL), 2)
    assert later.encode() in {key for _, key in requests}


async def test_an_async_client_not_started_says_so() -> None:
    client = AsyncClient(settings=ProducerSettings(bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(RuntimeError, match="the client is not started"):
        await client.submit(MODEL, inputs())
    await client.close()
    with pytest.raises(RuntimeError, match="the client has been closed"):
        await client.wait("j1", timeout=1)  # makes no new HTTP client to leak


async def test_a_closed_async_client_refuses_jobs_rather_than_dropping_them(
    producer_settings: ProducerSettings,
) -> None:
    async with AsyncClient(settings=producer_settings) as client:
        pass
    with pytest.raises(RuntimeError, match=r"^the client is closed$"):
        await client.submit(MODEL, inputs())
    with pytest.raises(RuntimeError, match=r"^the client is closed$"):
        await client.cancel("j1")


def test_a_closed_sync_client_says_so(producer_settings: ProducerSettings) -> None:
    with Client(settings=producer_settings) as client:
        pass
    with pytest.raises(RuntimeError, match=r"^the client is closed$"):
        client.submit(MODEL, inputs())


async def test_close_waits_for_a_submit_under_way_and_flushes_it(
    own_broker: DevBroker, prefix: str
) -> None:
    settings = settings_for(own_broker, prefix).model_copy(
        update={"submit_timeout_s": 20.0, "producer_batch_bytes": 1024, "queued_events": False}
    )
    await topics(settings)
    client = AsyncClient(settings=settings)
    await client.start()
    submitted: list[asyncio.Task[str]] = []
    with frozen(own_broker):
        # Small batches that the broker does not answer: soon a submit waits for room.
        for _ in range(100):
            submitted.append(asyncio.create_task(client.submit(MODEL, inputs())))
            done, _ = await asyncio.wait([submitted[-1]], timeout=0.2)
            if not done:
                break
        assert not submitted[-1].done()
        # two closes (a signal handler's and the `async with`'s, say) both wait for it
        closing = [asyncio.create_task(client.close()) for _ in range(2)]
        await asyncio.sleep(0)  # close begins: later submits are refused
        with pytest.raises(RuntimeError, match=r"^the client is closed$"):
            await client.submit(MODEL, inputs())
    async with asyncio.timeout(30):
        ids = [await task for task in submitted]
        await asyncio.gather(*closing)
    topic = settings.topics.requests(MODEL)
    requests = await read_all(settings.bootstrap_servers, topic, len(ids))
    assert sorted(key for _, key in requests) == sorted(job_id.encode() for job_id in ids)


@pytest.mark.timeout(60)
def test_the_sync_close_reports_the_jobs_its_flush_had_no_time_for(
    own_broker: DevBroker, prefix: str
) -> None:
    """`close(timeout)` gives up waiting for the broker after `timeout`, then disconnects,
    which gives up the records still in flight: those jobs are named all the same."""
    settings = settings_for(own_broker, prefix)
    asyncio.run(topics(settings))
    client = Client(settings=settings)
    client.submit(MODEL, inputs())
    client.flush()  # the topics' metadata is known from here on
    with frozen(own_broker):
        job_id = client.submit(MODEL, inputs())
        with pytest.raises(BrokerUnavailable, match=f"^{not_acknowledged(job_id)}") as caught:
            client.close(timeout=0.2)
    assert caught.value.job_ids == (job_id,)


class FirstSend:
    """Makes the sync client's producer run `before` as it is handed its first record
    (from inside `send`: the submit is past its check that the client is open)."""

    def __init__(self, before: Callable[[], None]) -> None:
        self.before = before
        self.called = False

    def producer(self, **options: Any) -> Any:
        producer = KafkaProducer(**options)
        send = producer.send

        def first_send(*args: Any, **kwargs: Any) -> Any:
            if not self.called:
                self.called = True
                self.before()
            return send(*args, **kwargs)

        producer.send = first_send
        return producer


class Seen(logging.Handler):
    """Sets `event` at the first record logged."""

    def __init__(self, event: threading.Event) -> None:
        super().__init__(logging.DEBUG)
        self.event = event
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.event.set()


@pytest.mark.timeout(60)
def test_the_sync_close_waits_for_a_submit_under_way_in_another_thread_and_flushes_it(
    producer_settings: ProducerSettings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    asyncio.run(topics(producer_settings))
    held, release, settled = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(GATE_S)

    monkeypatch.setattr("producer.client.KafkaProducer", FirstSend(hold).producer)
    caplog.set_level(logging.DEBUG, logger="producer.calls")
    seen = Seen(settled)  # close says it waits, or it ends: either way it is settled
    logging.getLogger("producer.calls").addHandler(seen)
    client = Client(settings=producer_settings)
    try:
        with ThreadPoolExecutor(2) as pool:
            submitting = pool.submit(client.submit, MODEL, inputs())
            assert held.wait(GATE_S)  # past the check, its record not handed over yet
            closing = pool.submit(client.close)
            closing.add_done_callback(lambda _: settled.set())
            assert settled.wait(GATE_S)
            with pytest.raises(RuntimeError, match=r"^the client is closed$"):
                client.submit(MODEL, inputs())
            release.set()
            job_id = submitting.result(GATE_S)
            closing.result(GATE_S)
    finally:
        logging.getLogger("producer.calls").removeHandler(seen)
    assert seen.messages == ["close() waits for 1 submit or cancel calls in other threads"]
    topic = producer_settings.topics.requests(MODEL)
    requests = asyncio.run(read_all(producer_settings.bootstrap_servers, topic, 1))
    assert [key for _, key in requests] == [job_id.encode()]


@pytest.mark.timeout(60)
def test_a_sync_close_interrupting_a_submit_on_its_thread_leaves_the_close_to_it(
    producer_settings: ProducerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a signal handler's `close` would, from inside kafka-python's `send` (whose locks
    the interrupted submit may hold, and a flush waits for): the close returns at once, and
    the submit hands its record over, then flushes and disconnects before it returns."""
    asyncio.run(topics(producer_settings))
    closed: list[Client] = []

    def close() -> None:
        client.close()
        closed.append(client)

    monkeypatch.setattr("producer.client.KafkaProducer", FirstSend(close).producer)
    client = Client(settings=producer_settings)
    assert client.submit(MODEL, inputs(), job_id="j1") == "j1"
    assert closed == [client]
    with pytest.raises(RuntimeError, match=r"^the client is closed$"):
        client.submit(MODEL, inputs())
    topic = producer_settings.topics.requests(MODEL)
    requests = asyncio.run(read_all(producer_settings.bootstrap_servers, topic, 1))
    assert [key for _, key in requests] == [b"j1"]
