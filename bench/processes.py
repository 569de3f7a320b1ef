"""The stack under test: the development broker here, workers and the API as processes."""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from inferq.devbroker import DevBroker, free_port
from inferq.stack import ensure_demo_models
from worker.repository import MODEL_FILE, versions_in

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    broker: DevBroker
    repo: Path
    api_url: str
    prefix: str = "bench"
    scratch: Path | None = None  # the results store's directory, removed by `stop`
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def worker_rss_mb(self) -> list[int]:
        """Resident memory of each worker process and its children, in MiB."""
        sizes = []
        for worker in self.workers:
            pids = [worker.pid, *_children(worker.pid)]
            sizes.append(sum(_rss_kb(pid) for pid in pids) // 1024)
        return sizes

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user and system) used so far by each part of the stack, its child
        processes included, and by this process (the load generator)."""
        broker = self.broker.pid
        parts = {
            "broker": [] if broker is None else [broker],
            "workers": [worker.pid for worker in self.workers],
            "api": [self.api.pid] if self.api is not None else [],
        }
        used = {
            name: sum(process_cpu_s(pid) for top in pids for pid in (top, *_children(top)))
            for name, pids in parts.items()
        }
        return {**used, "client": time.process_time()}

    def python_pids(self) -> dict[str, int]:
        """The stack's Python processes by role (a worker's processes are its children),
        and this one, the load generator, as `client`."""
        api = {"api": self.api.pid} if self.api is not None else {}
        return {"workers": self.workers[0].pid, **api, "client": os.getpid()}

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        self.broker.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    found = [int(c) for c in text.split()]
    return found + [g for c in found for g in _children(c)]


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds of one process and of its children that have exited and
    been waited for (the live ones are read on their own); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(ticks) for ticks in fields[11:15]) / _TICKS_PER_S


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def model_path(args: argparse.Namespace) -> Path:
    """The served (highest) version of `args.model` in `args.repo`; the demo models are
    built if missing."""
    repo: Path = args.repo
    if args.model in ("breast_cancer", "diabetes"):
        ensure_demo_models(repo)
    model_dir: Path = repo / args.model
    versions = versions_in(model_dir)
    if not versions:
        raise SystemExit(f"no version of {args.model!r} with a model file in {model_dir}")
    return model_dir / versions[-1] / MODEL_FILE


def start_stack(args: argparse.Namespace) -> Stack:
    repo: Path = args.repo
    model_path(args)
    broker = DevBroker().start()
    port = free_port()
    stack = Stack(broker, repo, f"http://127.0.0.1:{port}")
    stack.scratch = Path(tempfile.mkdtemp(prefix="inferq-bench-"))
    env = {
        **os.environ,
        "INFERQ_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "INFERQ_TOPIC_PREFIX": stack.prefix,
        "INFERQ_MODEL_REPOSITORY": str(repo),
        "INFERQ_MODELS": json.dumps([args.model]),
        "INFERQ_MAX_BATCH_SIZE": str(args.max_batch_size),
        "INFERQ_FETCH_MAX_WAIT_MS": str(args.fetch_max_wait_ms),
        "INFERQ_SESSION_TIMEOUT_MS": "2000",
        "INFERQ_HEARTBEAT_INTERVAL_MS": "500",
        "INFERQ_STORE": f"sqlite:///{stack.scratch}/results.db",
    }
    inferq = [sys.executable, "-m", "inferq"]
    worker = _quiet([*inferq, "worker", "--processes", str(args.processes)], env)
    stack.workers.append(worker)
    api = _quiet([*inferq, "api", "--port", str(port)], env)
    stack.api = api
    stack.processes += [worker, api]
    _wait_ready(stack.api_url, stack.processes)
    return stack


def _quiet(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(url: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a process of the stack exited during start-up")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within 120 s")
