"""What producing a record costs: aiokafka's `send`, one call a record, against
`inferq.outbox.Outbox`, which builds the batches itself, fed one record a call (as the SDK's
`submit` does) and 256 a call (as a worker sends a batch's results). Each way sends the same
records to a topic of 8 partitions on a development broker of its own, with the producer
settings inferq uses; the ways take turns, `--rounds` times. One JSON line per way and
round: this process's CPU a record (putting, sending, and taking the acknowledgements), the
broker's, and records a second until the last is acknowledged.

    python -m bench.outbox [--records 100000] [--rounds 2]
"""

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.processes import process_cpu_s
from inferq.admin import ensure_topics
from inferq.connections import MAX_REQUEST_BYTES, producer_options
from inferq.devbroker import DevBroker
from inferq.outbox import Outbox
from inferq.settings import KafkaSettings
from schemas import KafkaRecord

PARTITIONS = 8
HEADERS = [("inferq-schema", b"1"), ("content-type", b"application/x-inferq")]

Way = Callable[[AIOKafkaProducer, str, list[KafkaRecord]], Awaitable[None]]


async def send(producer: AIOKafkaProducer, topic: str, records: list[KafkaRecord]) -> None:
    futures = [
        await producer.send(topic, key=r.key, value=r.value, headers=r.headers) for r in records
    ]
    await asyncio.gather(*futures)


def outbox(per_call: int) -> Way:
    async def put(producer: AIOKafkaProducer, topic: str, records: list[KafkaRecord]) -> None:
        box = Outbox(
            producer,
            batch_bytes=KafkaSettings().producer_batch_bytes,
            max_record_bytes=MAX_REQUEST_BYTES,
            max_wait_s=30,
        )
        futures: set[asyncio.Future[None]] = set()
        for start in range(0, len(records), per_call):
            futures.update(await box.put([(topic, r) for r in records[start : start + per_call]]))
        await asyncio.gather(*futures)

    return put


WAYS: dict[str, Way] = {"send": send, "outbox-1": outbox(1), "outbox-256": outbox(256)}


async def run(args: argparse.Namespace) -> None:
    value = os.urandom(400)
    records = [KafkaRecord(b"%032x" % i, value, HEADERS) for i in range(args.records)]
    with DevBroker() as broker:
        pid = broker.pid
        if pid is None:
            raise RuntimeError("the development broker is not running")
        topics = [f"bench-outbox-{i}" for i in range(args.rounds * len(WAYS))]
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        await ensure_topics(settings, dict.fromkeys(topics, PARTITIONS))
        producer = AIOKafkaProducer(**producer_options(settings))
        await producer.start()
        try:
            await send(producer, topics[0], records[:100])  # connections and metadata
            for topic, (name, way) in zip(topics, list(WAYS.items()) * args.rounds, strict=True):
                print(json.dumps(await measure(name, way, producer, topic, records, pid)))
        finally:
            await producer.stop()


async def measure(
    name: str,
    way: Way,
    producer: AIOKafkaProducer,
    topic: str,
    records: list[KafkaRecord],
    broker_pid: int,
) -> dict[str, Any]:
    cpu, broker, wall = time.process_time(), process_cpu_s(broker_pid), time.perf_counter()
    await way(producer, topic, records)
    wall = time.perf_counter() - wall
    return {
        "bench": "outbox",
        "way": name,
        "records": len(records),
        "client_us_per_record": round((time.process_time() - cpu) / len(records) * 1e6, 2),
        "broker_us_per_record": round((process_cpu_s(broker_pid) - broker) / len(records) * 1e6, 2),
        "records_per_s": round(len(records) / wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
