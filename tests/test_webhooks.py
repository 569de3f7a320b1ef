"""Webhook delivery over real HTTP to loopback receivers: retries, give-up, 410, events."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from inferq.connections import consumer_options
from inferq.demo_models import dataset
from inferq.devbroker import free_port
from producer import AsyncClient, ProducerSettings
from producer.webhooks import new_secret, verify
from results_api.settings import ApiSettings
from tests.receiver import Reply, running_receiver
from tests.support import eventually, running_api, running_worker
from tests.test_lifecycle import MODEL, body, model_topic
from worker import Worker, WorkerSettings

SECRET = new_secret()
ROTATED = new_secret()


@pytest.fixture
def hook_settings(api_settings: ApiSettings) -> ApiSettings:
    return api_settings.model_copy(
        update={
            "webhook_secret": f"{SECRET} {ROTATED}",
            "webhook_allow_private": "127.0.0.0/8",
            "webhook_retry_schedule": "0.05,0.05,0.05,0.05",
            "webhook_timeout_s": 0.5,
            "webhook_poll_ms": 50,
        }
    )


@pytest.fixture
async def hooks(hook_settings: ApiSettings, worker: Worker) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(hook_settings) as http:
        yield http


async def submit(http: httpx.AsyncClient, url: str, events: list[str] | None = None) -> str:
    callback: dict[str, Any] = {"url": url}
    if events is not None:
        callback["events"] = events
    response = await http.post("/v1/jobs", json={**body(), "callback": callback})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def settled(http: httpx.AsyncClient, job_id: str, count: int = 1) -> dict[str, Any]:
    """The job once `count` webhook deliveries have stopped being pending."""

    async def probe() -> dict[str, Any] | None:
        job: dict[str, Any] = (await http.get(f"/v1/jobs/{job_id}")).json()
        hooks = job.get("webhooks", [])
        done = [h for h in hooks if h["state"] != "pending"]
        return job if len(done) == count else None

    return await eventually(probe)


async def test_fourth_try_is_delivered_with_one_id_and_valid_signatures(
    hooks: httpx.AsyncClient,
) -> None:
    script = [Reply(500), Reply(hang=True), Reply(429, {"Retry-After": "1"})]
    async with running_receiver(script) as receiver:
        job_id = await submit(hooks, receiver.url)
        job = await settled(hooks, job_id)
        tries = await receiver.tried(4)
    [hook] = job["webhooks"]
    assert hook["state"] == "delivered"
    assert hook["attempts"] == 4
    assert hook["last_status"] == 200
    assert hook["id"] == f"msg_{job_id}.completed"
    assert len(receiver.attempts) == 4
    assert {t.headers["webhook-id"] for t in tries} == {hook["id"]}
    for attempt in tries:
        verify(attempt.body, attempt.headers, SECRET)
        verify(attempt.body, attempt.headers, ROTATED)
        assert len(attempt.headers["webhook-signature"].split()) == 2
        assert attempt.body == tries[0].body
    sent = json.loads(tries[0].body)
    assert sent["type"] == "job.succeeded"
    assert sent["data"]["job_id"] == job_id
    assert sent["data"]["status"] == "succeeded"
    # Retry-After: 1 held the 4th try back for at least a second after the 3rd.
    third, fourth = (int(t.headers["webhook-timestamp"]) for t in tries[2:])
    assert fourth - third >= 1


async def test_receiver_down_for_the_whole_schedule_is_given_up_and_dead_lettered(
    hooks: httpx.AsyncClient, hook_settings: ApiSettings
) -> None:
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    job_id = await submit(hooks, url)
    job = await settled(hooks, job_id)
    [hook] = job["webhooks"]
    assert hook["state"] == "given_up"
    assert hook["attempts"] == 5
    assert hook["last_error"].endswith("; gave up after 5 tries")
    assert "next_try_at" not in hook
    dead = await _dead_letters(hook_settings, 1)
    assert dead[0][0] == job_id.encode()
    headers = dict(dead[0][1])
    assert headers["webhook-id"] == hook["id"].encode()
    assert headers["url"] == url.encode()


async def _dead_letters(settings: ApiSettings, count: int) -> list[tuple[bytes, Any]]:
    consumer = AIOKafkaConsumer(settings.topics.webhooks_dead, **consumer_options(settings, None))
    await consumer.start()
    found: list[tuple[bytes, Any]] = []
    try:

        async def probe() -> list[tuple[bytes, Any]] | None:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend((r.key, r.headers) for r in records)
            return found if len(found) >= count else None

        return await eventually(probe)
    finally:
        await consumer.stop()


async def test_410_stops_tries_to_the_url_until_a_retry_is_asked_for(
    hooks: httpx.AsyncClient,
) -> None:
    async with running_receiver([Reply(410)]) as receiver:
        first = await submit(hooks, receiver.url)
        [hook] = (await settled(hooks, first))["webhooks"]
        assert (hook["state"], hook["attempts"], hook["last_status"]) == ("given_up", 1, 410)
        second = await submit(hooks, receiver.url)
        [hook] = (await settled(hooks, second))["webhooks"]
        assert hook["state"] == "given_up"
        assert hook["last_error"].startswith("an earlier try to this URL answered 410 Gone")
        assert len(receiver.attempts) == 1

        retried = await hooks.post(f"/v1/jobs/{second}/webhook/retry")
        assert retried.status_code == 202
        assert retried.json()["webhooks"][0]["state"] == "pending"
        [hook] = (await settled(hooks, second))["webhooks"]
        assert (hook["state"], hook["attempts"], hook["last_status"]) == ("delivered", 1, 200)
        assert len(receiver.attempts) == 2


async def test_running_and_completed_events_when_asked_for(hooks: httpx.AsyncClient) -> None:
    async with running_receiver() as receiver:
        both = await submit(hooks, receiver.url, ["completed", "running"])
        job = await settled(hooks, both, count=2)
        tries = await receiver.tried(2)
    assert {h["event"]: h["state"] for h in job["webhooks"]} == {
        "running": "delivered",
        "completed": "delivered",
    }
    assert sorted(json.loads(t.body)["type"] for t in tries) == ["job.running", "job.succeeded"]
    assert len(receiver.attempts) == 2


async def test_retry_of_a_job_without_callback_is_409(hooks: httpx.AsyncClient) -> None:
    job_id = (await hooks.post("/v1/jobs", json=body())).json()["job_id"]
    response = await hooks.post(f"/v1/jobs/{job_id}/webhook/retry")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "no_webhook",
        "message": f"job '{job_id}' has no callback",
    }
    missing = await hooks.post("/v1/jobs/nope/webhook/retry")
    assert missing.status_code == 404


async def test_callbacks_to_loopback_are_refused_without_the_allowlist(
    api: httpx.AsyncClient, api_settings: ApiSettings
) -> None:
    """`api` has no webhook secret: callbacks are off; with a secret but no allowlist, a
    loopback URL is refused."""
    off = await api.post("/v1/jobs", json={**body(), "callback": {"url": "https://example.com/"}})
    assert off.status_code == 422
    assert off.json()["error"]["message"].startswith("webhooks are off on this server")
    strict = api_settings.model_copy(update={"webhook_secret": SECRET})
    async with running_api(strict) as http:
        for url, word in [
            ("http://127.0.0.1:9/hook", "loopback"),
            ("http://10.1.2.3/hook", "private"),
            ("http://169.254.169.254/latest/meta-data", "metadata"),
        ]:
            response = await http.post("/v1/jobs", json={**body(), "callback": {"url": url}})
            assert response.status_code == 422, url
            error = response.json()["error"]
            assert error["code"] == "callback_refused"
            assert word in error["message"]


async def test_sdk_callback_and_a_cancelled_job_are_delivered(
    hook_settings: ApiSettings,
    producer_settings: ProducerSettings,
    worker_settings: WorkerSettings,
) -> None:
    """No worker runs until the second job is cancelled through the SDK, which cannot know
    the callback: the worker that skips the job writes its `cancelled` event again, with
    the callback, so the receiver hears of it."""
    await model_topic(hook_settings)
    features = {"input": dataset(MODEL)[0][:1]}
    async with running_receiver() as receiver, running_api(hook_settings) as http:
        async with AsyncClient(settings=producer_settings) as client:
            ran = await client.submit(MODEL, features, callback_url=receiver.url)
            stopped = await client.submit(MODEL, features, callback_url=receiver.url)
            await client.cancel(stopped)
        async with running_worker(worker_settings):
            jobs = [await settled(http, job_id) for job_id in (ran, stopped)]
        tries = await receiver.tried(2)
    assert [job["status"] for job in jobs] == ["succeeded", "cancelled"]
    assert [job["webhooks"][0]["state"] for job in jobs] == ["delivered", "delivered"]
    types = {json.loads(t.body)["data"]["job_id"]: json.loads(t.body)["type"] for t in tries}
    assert types == {ran: "job.succeeded", stopped: "job.cancelled"}
