"""Record placement: the CRC-32 of the key, in every inferq producer, on a real broker."""

import zlib
from collections import Counter

import httpx

from inferq.demo_models import dataset
from inferq.partitioner import place
from producer import AsyncClient, Client, ProducerSettings
from tests.support import body, read_all, wait_terminal
from worker import WorkerSettings


def test_a_key_goes_to_its_standard_crc32_modulo_the_partition_count() -> None:
    # 0xCBF43926 is the published check value of CRC-32 for b"123456789".
    assert place(b"123456789", range(7), range(7)) == 0xCBF43926 % 7 == 5
    assert place(b"123456789", [0], [0]) == 0


def test_keys_spread_over_every_partition() -> None:
    counts = Counter(place(f"job-{i}".encode(), [0, 1, 2], [0, 1, 2]) for i in range(3000))
    assert counts == {0: 1021, 1: 987, 2: 992}


def test_a_record_without_key_goes_to_an_available_partition() -> None:
    assert {place(None, [0, 1, 2], [2]) for _ in range(20)} == {2}


async def test_sdk_clients_api_and_worker_place_records_by_crc32_of_the_job_id(
    api: httpx.AsyncClient, producer_settings: ProducerSettings, worker_settings: WorkerSettings
) -> None:
    features, _ = dataset("breast_cancer")
    async with AsyncClient(settings=producer_settings) as client:
        ids = [await client.submit("breast_cancer", {"input": features[:1]}) for _ in range(8)]
        await client.flush()
    with Client(settings=producer_settings) as sync_client:
        ids += [sync_client.submit("breast_cancer", {"input": features[:1]}) for _ in range(8)]
        sync_client.flush()
    for _ in range(4):  # the API writes the request and the queued event itself
        accepted = await api.post("/v1/jobs", json=body("breast_cancer", features[:1]))
        ids.append(accepted.json()["job_id"])
    for job_id in ids:
        assert (await wait_terminal(api, job_id))["status"] == "succeeded"

    topics = producer_settings.topics
    bootstrap = worker_settings.bootstrap_servers
    requests = await read_all(bootstrap, topics.requests("breast_cancer"), 20)
    events = await read_all(bootstrap, topics.results, 40)  # queued + succeeded (worker)
    assert sorted(key.decode() for _, key in requests) == sorted(ids)
    assert Counter(key.decode() for _, key in events) == {job_id: 2 for job_id in ids}
    for partition, key in requests + events:
        assert partition == zlib.crc32(key) % 2, key
    assert {partition for partition, _ in requests} == {0, 1}
