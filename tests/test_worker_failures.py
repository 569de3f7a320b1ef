"""Bad input gets a failed result (and the dead-letter topic), and the worker goes on."""

import httpx
from aiokafka import AIOKafkaProducer

from inferq.demo_models import dataset
from producer import AsyncClient, ProducerSettings
from results_api.settings import ApiSettings
from schemas import InferenceRequest, Tensor, encode_request
from tests.support import dead_letters, running_api, running_worker, wait_terminal
from worker import Worker, WorkerSettings


async def produce_raw(
    settings: WorkerSettings,
    topic: str,
    key: bytes,
    value: bytes,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key, value=value, headers=headers or [])
    finally:
        await producer.stop()


async def test_malformed_record_fails_the_job_and_is_dead_lettered(
    api: httpx.AsyncClient,
    worker: Worker,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
) -> None:
    topic = worker_settings.topics.requests("breast_cancer")
    await produce_raw(worker_settings, topic, b"broken-1", b"{this is not json")

    job = await wait_terminal(api, "broken-1")
    assert job["status"] == "failed"
    assert job["error"] == {"code": "malformed_record", "message": "record value is not valid JSON"}

    [record] = await dead_letters(worker_settings, 1)
    headers = dict(record.headers)
    assert record.key == b"broken-1"
    assert record.value == b"{this is not json"
    assert headers["inferq-error-code"] == b"malformed_record"
    assert headers["inferq-origin-topic"] == topic.encode()
    assert int(headers["inferq-origin-offset"]) >= 0

    # and the worker still serves the next job
    features, _ = dataset("breast_cancer")
    async with AsyncClient(settings=producer_settings) as client:
        job_id = await client.submit("breast_cancer", {"input": features[:1]})
    assert (await wait_terminal(api, job_id))["status"] == "succeeded"


async def test_wrong_shape_and_dtype_fail_with_clear_messages(
    api: httpx.AsyncClient,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
) -> None:
    features, _ = dataset("breast_cancer")
    async with AsyncClient(settings=producer_settings) as client:
        short = await client.submit("breast_cancer", {"input": features[:1, :29]})
        as_double = await client.submit("breast_cancer", {"input": features[:1].astype("float64")})
        wrong_name = await client.submit("breast_cancer", {"x": features[:1]})
        good = await client.submit("breast_cancer", {"input": features[:2]})

    assert (await wait_terminal(api, short))["error"] == {
        "code": "invalid_input",
        "message": "input 'input' expects FP32 [?, 30], got FP32 [1, 29]",
    }
    assert (await wait_terminal(api, as_double))["error"] == {
        "code": "invalid_input",
        "message": "input 'input' expects FP32 [?, 30], got FP64 [1, 30]",
    }
    assert (await wait_terminal(api, wrong_name))["error"] == {
        "code": "invalid_input",
        "message": "model breast_cancer version 1 takes inputs 'input' FP32 [?, 30]; "
        "missing ['input'], unexpected ['x']",
    }
    assert (await wait_terminal(api, good))["status"] == "succeeded"


async def test_unknown_version_and_wrong_topic_fail(
    api: httpx.AsyncClient,
    worker_settings: WorkerSettings,
) -> None:
    features, _ = dataset("diabetes")
    tensor = Tensor.from_numpy("input", features[:1])
    v9 = InferenceRequest(model="diabetes", model_version="9", inputs=[tensor], job_id="v9")
    record = encode_request(v9)
    await produce_raw(
        worker_settings,
        worker_settings.topics.requests("diabetes"),
        record.key,
        record.value,
        record.headers,
    )
    # a request for a model this worker does not serve, put on another model's topic
    stray = InferenceRequest(model="elsewhere", inputs=[tensor], job_id="stray")
    record = encode_request(stray)
    await produce_raw(
        worker_settings,
        worker_settings.topics.requests("diabetes"),
        record.key,
        record.value,
        record.headers,
    )

    assert (await wait_terminal(api, "v9"))["error"] == {
        "code": "model_version_not_found",
        "message": "model 'diabetes' has no version '9'; served versions: 1",
    }
    assert (await wait_terminal(api, "stray"))["error"] == {
        "code": "model_not_found",
        "message": "model 'elsewhere' is not served by this worker",
    }


async def test_a_result_over_the_limit_fails_and_the_worker_goes_on(
    api_settings: ApiSettings, worker_settings: WorkerSettings, producer_settings: ProducerSettings
) -> None:
    limited = worker_settings.model_copy(update={"max_result_bytes": 2048})
    features, _ = dataset("breast_cancer")
    async with running_worker(limited), running_api(api_settings) as api:
        async with AsyncClient(settings=producer_settings) as client:
            large = await client.submit("breast_cancer", {"input": features[:200]})
            small = await client.submit("breast_cancer", {"input": features[:1]})
        refused = await wait_terminal(api, large)
        assert refused["status"] == "failed"
        assert refused["error"]["code"] == "payload_too_large"
        assert (
            "over the limit of 2048 bytes (INFERQ_MAX_RESULT_BYTES)"
            in (refused["error"]["message"])
        )
        assert (await wait_terminal(api, small))["status"] == "succeeded"
