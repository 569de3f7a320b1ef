"""One broker hop on its own: records produced at a fixed rate to a topic of the
development broker and read by a consumer in a group (as the worker and the API read
theirs: a group, manual commits, the fetch wait given), from `send` to `getmany` handing
the record over. Nothing else runs on the
broker. One JSON line per fetch wait: latency percentiles, and the share of a core the
broker and this process (producer and consumer together) used.

    python -m bench.hop --fetch-max-wait-ms 2 5 20 [--rate 100] [--records 1000]

A job crosses two such hops (the request to a worker, its result to the API); the
e2e bench's `queued_ms` and `return_ms` show what each costs inside the whole stack.
"""

import argparse
import asyncio
import json
import struct
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.processes import process_cpu_s
from inferq.admin import ensure_topics
from inferq.devbroker import DevBroker
from inferq.settings import KafkaSettings

TOPIC = "bench-hop"
STAMP = struct.Struct("<d")  # the record's value: time.monotonic() at send
GIVE_UP_S = 60.0  # on the warm-up, and on the records after the last one is sent


async def read(consumer: AIOKafkaConsumer, records: int, latencies: list[float]) -> None:
    while len(latencies) < records:
        fetched = await consumer.getmany(timeout_ms=1000)
        now = time.monotonic()
        for batch in fetched.values():
            latencies.extend((now - STAMP.unpack(r.value)[0]) * 1000 for r in batch)


def percentile(ordered: list[float], q: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def hop(args: argparse.Namespace, wait_ms: int) -> dict[str, Any]:
    """A fresh broker: one record to warm the path up, then `args.records` timed ones."""
    with DevBroker() as broker:
        pid = broker.pid
        if pid is None:
            raise RuntimeError("the development broker is not running")
        bootstrap = broker.bootstrap_servers
        await ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), {TOPIC: args.partitions})
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        consumer = AIOKafkaConsumer(
            TOPIC,
            bootstrap_servers=bootstrap,
            group_id="bench-hop",
            fetch_max_wait_ms=wait_ms,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await producer.start()
        await consumer.start()
        try:
            await producer.send_and_wait(TOPIC, STAMP.pack(time.monotonic()))
            async with asyncio.timeout(GIVE_UP_S):  # the group joined, the first record read
                await read(consumer, 1, [])
            latencies: list[float] = []
            reading = asyncio.create_task(read(consumer, args.records, latencies))
            broker0, own0, start = process_cpu_s(pid), time.process_time(), time.monotonic()
            sent = []
            for i in range(args.records):
                await asyncio.sleep(max(0.0, start + i / args.rate - time.monotonic()))
                stamp = STAMP.pack(time.monotonic())
                sent.append(await producer.send(TOPIC, stamp, key=str(i).encode()))
            await asyncio.gather(*sent)  # a record the broker refused fails the run here
            await asyncio.wait_for(reading, GIVE_UP_S)
            elapsed = time.monotonic() - start
            broker_share = (process_cpu_s(pid) - broker0) / elapsed
            own_share = (time.process_time() - own0) / elapsed
        finally:
            await consumer.stop()
            await producer.stop()
    ordered = sorted(latencies)
    return {
        "bench": "hop",
        "fetch_max_wait_ms": wait_ms,
        "partitions": args.partitions,
        "rate": args.rate,
        "records": len(ordered),
        "p50_ms": percentile(ordered, 0.5),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": round(ordered[-1], 2),
        "core_percent": {
            "broker": round(broker_share * 100, 1),
            "bench": round(own_share * 100, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fetch-max-wait-ms", type=int, nargs="+", default=[2, 5, 20])
    parser.add_argument("--rate", type=float, default=100.0, help="records per second")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    if args.rate <= 0 or args.records < 1 or args.partitions < 1:
        parser.error("--rate, --records and --partitions must be positive")
    for wait_ms in args.fetch_max_wait_ms:
        print(json.dumps(asyncio.run(hop(args, wait_ms))), flush=True)


if __name__ == "__main__":
    main()
