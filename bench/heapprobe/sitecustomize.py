"""A memory probe for worker processes, loaded by Python at start-up from PYTHONPATH.

    HEAPPROBE_OUT=/tmp/heap PYTHONPATH=bench/heapprobe python -m bench.e2e ...

Every process whose command line names `worker`, and every process such a one starts,
writes `/tmp/heap/heap-<pid>.jsonl`, one JSON line every 2 s: its RSS, what glibc's
allocator holds (`arena_mb`, of which `in_use_mb` is allocated and `free_mb` free but
not given back), and Python's live allocated blocks. RSS that grows while `blocks` and
`in_use_mb` stay flat is the allocator holding memory, not objects that pile up.
Other processes, and a process without HEAPPROBE_OUT, are left alone.
"""

import ctypes
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

_MB = 1 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _sample(mallinfo2: Callable[[], _MallInfo2]) -> dict[str, float]:
    info = mallinfo2()
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return {
        "t": round(time.time(), 3),
        "rss_mb": round(pages * os.sysconf("SC_PAGE_SIZE") / _MB, 1),
        "arena_mb": round((info.arena + info.hblkhd) / _MB, 1),
        "in_use_mb": round((info.uordblks + info.hblkhd) / _MB, 1),
        "free_mb": round(info.fordblks / _MB, 1),
        "blocks": sys.getallocatedblocks(),
    }


def _probe(out: Path) -> None:
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = _MallInfo2
    with (out / f"heap-{os.getpid()}.jsonl").open("a") as lines:
        while True:
            time.sleep(2)
            lines.write(json.dumps(_sample(mallinfo2)) + "\n")
            lines.flush()


def _of_a_worker() -> bool:
    """A worker's process, or one it started (`inferq worker --processes N`)."""
    parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    return "worker" in sys.orig_argv or b"worker" in parent


if "HEAPPROBE_OUT" in os.environ and _of_a_worker():
    _out = Path(os.environ["HEAPPROBE_OUT"])
    _out.mkdir(parents=True, exist_ok=True)
    threading.Thread(target=_probe, args=(_out,), daemon=True, name="heapprobe").start()
