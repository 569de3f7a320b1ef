"""Where the CPU goes: py-spy samples each Python process of the stack over a measured run
(`bench/e2e.py --profile DIR`), and each one is summed up in one JSON line.

py-spy writes one file per process in DIR (`<role>.txt`, its "raw" format: one line per
distinct stack, `frame;frame;... count`), which flamegraph tools read. The summary gives, per
process, the share of the samples spent in each library (by the innermost frame: the code
that was running) and the inferq functions with the largest share of samples under them.
Threads py-spy finds idle are not sampled, so shares are of the time the process was doing
something; a thread inside ONNX Runtime counts as busy. A thread in a short wait (the event
loop's poll with a timeout of a few milliseconds) is often found runnable: such samples are
counted as "waiting".
"""

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OWN = ("inferq", "producer", "worker", "results_api", "schemas", "bench")
LIBRARIES = {
    "aiokafka": "aiokafka",
    "kafka": "kafka-python",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "fastapi": "fastapi/starlette",
    "starlette": "fastapi/starlette",
    "uvicorn": "uvicorn",
    "onnxruntime": "onnxruntime",
    "numpy": "numpy",
    "tokenizers": "tokenizers",
    "asyncio": "asyncio",
    "sqlite3": "sqlite3",
    "json": "json",
    "redis": "redis",
    "httpx": "httpx",
    "httpcore": "httpx",
    "aiohttp": "aiohttp",
}
# Frames that wait: with short timeouts py-spy often finds such a thread runnable and counts
# it as busy. Their share is given as "waiting" (the system calls in it do cost some CPU).
WAITS = (
    "EpollSelector.select (selectors.py:",
    "_worker (concurrent/futures/thread.py:",
    "Condition.wait (threading.py:",
)
TOP = 12  # inferq functions listed per process


@dataclass
class Spy:
    role: str
    output: Path
    process: subprocess.Popen[bytes]


def py_spy() -> str:
    """The py-spy command: beside this Python (a virtual environment's bin) or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    return found


def start(
    directory: Path, pids: dict[str, int], with_children: set[str], rate: int = 100
) -> list[Spy]:
    """A py-spy recorder on each of `pids` (role -> pid), with their child processes for the
    roles in `with_children`."""
    directory.mkdir(parents=True, exist_ok=True)
    command = py_spy()
    spies = []
    for role, pid in pids.items():
        output = directory / f"{role}.txt"
        options = ["--nonblocking", "--rate", str(rate), "--format", "raw"]
        if role in with_children:
            options.append("--subprocesses")
        recorder = subprocess.Popen(
            [command, "record", "--pid", str(pid), *options, "--output", str(output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        spies.append(Spy(role, output, recorder))
    return spies


def stop(spies: list[Spy]) -> list[dict[str, Any]]:
    """Stop the recorders (each writes its file on SIGINT) and sum each file up."""
    for spy in spies:
        spy.process.send_signal(signal.SIGINT)
    lines = []
    for spy in spies:
        code = spy.process.wait(60)
        if code != 0 or not spy.output.exists():
            raise RuntimeError(f"py-spy on the {spy.role} exited {code} and wrote no profile")
        with spy.output.open() as stacks:
            lines.append({"bench": "profile", "role": spy.role, **summarize(stacks)})
    return lines


def summarize(stacks: Iterable[str]) -> dict[str, Any]:
    """Samples, the share of them in each library by innermost frame, and the inferq
    functions with the largest share of samples under them (below the event loop)."""
    total = 0
    by_library: Counter[str] = Counter()
    under: Counter[str] = Counter()
    for line in stacks:
        path, _, count_text = line.rstrip("\n").rpartition(" ")
        if not path:
            continue
        count = int(count_text)
        frames = path.split(";")
        total += count
        by_library[library(frames[-1])] += count
        for name in {own for frame in running(frames) if (own := own_function(frame)) is not None}:
            under[name] += count

    def shares(counter: Counter[str], top: int | None = None) -> dict[str, float]:
        return {name: round(n / total, 3) for name, n in counter.most_common(top)}

    if total == 0:
        return {"samples": 0, "self_by_library": {}, "inferq_inclusive": {}}
    return {
        "samples": total,
        "self_by_library": shares(by_library),
        "inferq_inclusive": shares(under, TOP),
    }


def running(frames: list[str]) -> list[str]:
    """The frames below the event loop's callback (the task it was running; none while the
    loop itself runs), or all of them on a thread without an event loop: the entry points
    above the loop are in every sample."""
    for depth in range(len(frames) - 1, -1, -1):
        if frames[depth].startswith("Handle._run (asyncio/events.py:"):
            return frames[depth + 1 :]
    if any("(asyncio/" in frame for frame in frames):
        return []
    return frames


def _file(frame: str) -> str:
    """`name (path/file.py:line)` -> `path/file.py`."""
    location = frame.rpartition(" (")[2].rstrip(")")
    return location.rpartition(":")[0] or location


def library(frame: str) -> str:
    """Whose code a frame runs: a wait, an inferq package, a known library, or `python`
    (the standard library and everything else)."""
    if frame.startswith(WAITS):
        return "waiting"
    top = _file(frame).split("/", 1)[0]
    if top in OWN:
        return "inferq"
    return LIBRARIES.get(top, "python")


def own_function(frame: str) -> str | None:
    """`path/file.py:name` for a frame in inferq's own code, else None."""
    file = _file(frame)
    if file.split("/", 1)[0] not in OWN:
        return None
    return f"{file}:{frame.rpartition(' (')[0]}"
