"""The physical limit: a model run by ONNX Runtime in-process at the best batch size and
thread layout. Prints one JSON line per measurement, then one with "best": true.

    python -m bench.raw --model breast_cancer [--repo models] [--seconds 2]
"""

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from worker.runtime import session_options

BATCH_SIZES = (1, 8, 64, 256, 1024)


def sample_inputs(session: ort.InferenceSession, rows: int) -> dict[str, Any]:
    """Random inputs of the model's signature with `rows` rows (texts for string inputs)."""
    rng = np.random.default_rng(0)
    feeds: dict[str, Any] = {}
    for node in session.get_inputs():
        shape = [rows if not isinstance(d, int) or d < 0 else d for d in node.shape]
        shape[0] = rows
        if node.type == "tensor(string)":
            feeds[node.name] = np.array(["a short sentence to embed"] * rows, dtype=object)
        elif node.type == "tensor(int64)":
            feeds[node.name] = rng.integers(0, 1000, size=shape, dtype=np.int64)
        elif node.type == "tensor(uint8)":
            feeds[node.name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        else:
            feeds[node.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def throughput(path: Path, rows: int, threads: int, seconds: float) -> float:
    """Samples per second of one session with `threads` intra-op threads."""
    session = ort.InferenceSession(str(path), sess_options=session_options(threads))
    feeds = sample_inputs(session, rows)
    for _ in range(3):
        session.run(None, feeds)  # warm up this shape
    runs = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        session.run(None, feeds)
        runs += 1
    return runs * rows / elapsed


def _child(args: tuple[Path, int, float]) -> float:
    path, rows, seconds = args
    return throughput(path, rows, 1, seconds)


def processes_throughput(path: Path, rows: int, processes: int, seconds: float) -> float:
    """Samples per second of `processes` single-threaded sessions running at once."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return float(sum(pool.map(_child, [(path, rows, seconds)] * processes)))


def layouts(cores: int) -> list[tuple[str, int, int]]:
    """(label, processes, threads per session) to try on this machine."""
    found = [("1 session x 1 thread", 1, 1)]
    if cores > 1:
        found += [
            (f"1 session x {cores} threads", 1, cores),
            (f"{cores} processes x 1 thread", cores, 1),
        ]
    return found


def measure(path: Path, model: str, seconds: float, batch_sizes: tuple[int, ...]) -> dict[str, Any]:
    """Every layout at every batch size; returns the best line."""
    best: dict[str, Any] = {}
    for rows in batch_sizes:
        for layout, processes, threads in layouts(os.cpu_count() or 1):
            rate = (
                processes_throughput(path, rows, processes, seconds)
                if processes > 1
                else throughput(path, rows, threads, seconds)
            )
            line = {
                "bench": "raw",
                "model": model,
                "batch_size": rows,
                "layout": layout,
                "samples_per_s": round(rate, 1),
            }
            print(json.dumps(line), flush=True)
            if line["samples_per_s"] > best.get("samples_per_s", 0):
                best = line
    return {**best, "best": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="breast_cancer")
    parser.add_argument("--repo", type=Path, default=Path("models"))
    parser.add_argument("--version", default="1")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    args = parser.parse_args()
    sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    path = args.repo / args.model / args.version / "model.onnx"
    print(json.dumps(measure(path, args.model, args.seconds, sizes)), flush=True)


if __name__ == "__main__":
    main()
