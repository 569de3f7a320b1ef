"""What an idle stack costs: the broker, a worker and the results API with no jobs, and the
share of a core each uses over a while, at each fetch wait given. One JSON line per wait.

    python -m bench.idle --fetch-max-wait-ms 2 5 20 100

The development broker answers a waiting fetch only when the wait ends, so every consumer
asks again every `INFERQ_FETCH_MAX_WAIT_MS` and each empty answer costs CPU in the broker
and in the asking process; under light load that CPU is taken from the jobs.
"""

import argparse
import json
import time
from pathlib import Path

from bench.processes import start_stack


def measure(args: argparse.Namespace, wait_ms: int) -> dict[str, object]:
    stack_args = argparse.Namespace(**{**vars(args), "fetch_max_wait_ms": wait_ms})
    stack = start_stack(stack_args)
    try:
        time.sleep(args.settle)  # joins and first fetches done: not part of the idle cost
        before, start = stack.cpu_seconds(), time.monotonic()
        time.sleep(args.seconds)
        after, elapsed = stack.cpu_seconds(), time.monotonic() - start
    finally:
        stack.stop()
    share = {
        part: round((after[part] - before[part]) / elapsed * 100, 1)
        for part in ("broker", "workers", "api")
    }
    return {
        "bench": "idle",
        "fetch_max_wait_ms": wait_ms,
        "seconds": round(elapsed, 1),
        "core_percent": {**share, "total": round(sum(share.values()), 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fetch-max-wait-ms", type=int, nargs="+", default=[2, 5, 20, 100])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to measure")
    parser.add_argument("--settle", type=float, default=5.0, help="wait before measuring")
    parser.add_argument("--model", default="breast_cancer")
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--max-batch-size", type=int, default=256)
    parser.add_argument("--repo", type=Path, default=Path("models"))
    args = parser.parse_args()
    for wait_ms in args.fetch_max_wait_ms:
        print(json.dumps(measure(args, wait_ms)), flush=True)


if __name__ == "__main__":
    main()
