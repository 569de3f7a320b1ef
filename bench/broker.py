"""What the development broker's CPU costs per record, by producer batch size: N records of
S bytes produced as fast as aiokafka goes, then read back once. Prints one JSON line per
batch size.

    python -m bench.broker [--records 100000] [--bytes 500] [--batch-bytes 16384,262144]
"""

import argparse
import asyncio
import json
import os
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.processes import process_cpu_s
from inferq.devbroker import DevBroker

TOPIC = "bench-broker"


async def produce(bootstrap: str, records: int, size: int, batch_bytes: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=0,
        max_batch_size=batch_bytes,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        value = os.urandom(size)
        sent = [await producer.send(TOPIC, value, key=str(i).encode()) for i in range(records)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def consume(bootstrap: str, records: int) -> None:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        read = 0
        while read < records:
            fetched = await consumer.getmany(timeout_ms=1000)
            read += sum(len(batch) for batch in fetched.values())
    finally:
        await consumer.stop()


async def measure(records: int, size: int, batch_bytes: int) -> dict[str, Any]:
    """One fresh broker: produce, then read back, each timed with the broker's CPU."""
    with DevBroker() as broker:
        pid = broker.pid
        if pid is None:
            raise RuntimeError("the development broker is not running")
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        finally:
            await admin.close()
        line: dict[str, Any] = {"bench": "broker", "records": records, "bytes": size}
        line["batch_bytes"] = batch_bytes
        for step, run in (
            ("produce", produce(broker.bootstrap_servers, records, size, batch_bytes)),
            ("consume", consume(broker.bootstrap_servers, records)),
        ):
            cpu0, start = process_cpu_s(pid), time.monotonic()
            await run
            line[f"{step}_s"] = round(time.monotonic() - start, 3)
            line[f"broker_cpu_{step}_s"] = round(process_cpu_s(pid) - cpu0, 3)
        return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--bytes", type=int, default=500)
    parser.add_argument("--batch-bytes", default="16384,65536,262144,1048576")
    args = parser.parse_args()
    for batch_bytes in (int(b) for b in args.batch_bytes.split(",")):
        line = asyncio.run(measure(args.records, args.bytes, batch_bytes))
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
