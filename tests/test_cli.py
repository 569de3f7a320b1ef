"""The `inferq` command, run as a user would: real processes, real signals."""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from inferq.demo_models import build_missing_demo_models, dataset
from inferq.devbroker import DevBroker, answers_kafka, free_port
from producer import AsyncClient, ProducerSettings
from results_api.settings import ApiSettings
from tests.processes import Service, Supervisor, base_settings
from tests.support import eventually, running_api, wait_terminal

INFERQ = [sys.executable, "-m", "inferq"]


def test_models_build_demo_writes_the_repository(tmp_path: Path) -> None:
    done = subprocess.run(
        [*INFERQ, "models", "build-demo", str(tmp_path / "repo")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == [
        str(tmp_path / "repo" / "breast_cancer" / "1" / "model.onnx"),
        str(tmp_path / "repo" / "diabetes" / "1" / "model.onnx"),
    ]
    config = json.loads((tmp_path / "repo" / "diabetes" / "config.json").read_text())
    assert config == {"postprocess": [{"op": "clamp", "output": "variable", "min": 0.0}]}


def _wait_ready(url: str, process: subprocess.Popen[str], within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready within {within_s}s")


def _get(job_id: str, env: dict[str, str], api: str) -> dict[str, object]:
    done = subprocess.run(
        [*INFERQ, "get", job_id, "--api", api],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    job: dict[str, object] = json.loads(done.stdout)
    return job


def _start_dev(
    api_port: int, broker_port: int, repo: Path, *more: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    command = [*INFERQ, "dev", "--api-port", str(api_port), "--broker-port", str(broker_port)]
    return subprocess.Popen(
        [*command, "--models", str(repo), *more],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_dev_stack_submit_get_and_sigterm(tmp_path: Path, model_repo: Path) -> None:
    api_port, broker_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    env = {
        **os.environ,
        "INFERQ_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
        "INFERQ_SESSION_TIMEOUT_MS": "2000",
        "INFERQ_HEARTBEAT_INTERVAL_MS": "500",
        "INFERQ_GC_THRESHOLD": "20000",
    }
    store = f"sqlite:///{tmp_path / 'r.db'}"
    dev = _start_dev(api_port, broker_port, model_repo, "--store", store, env=env)
    try:
        _wait_ready(api, dev)
        features, _ = dataset("breast_cancer")
        row = json.dumps(features[:1].tolist())
        submitted = subprocess.run(
            [*INFERQ, "submit", "breast_cancer", "--input", f"input={row}", "--job-id", "cli-1"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=True,
        )
        assert submitted.stdout.strip() == "cli-1"

        deadline = time.monotonic() + 60
        job = _get("cli-1", env, api)
        while job.get("status") != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.05)
            job = _get("cli-1", env, api)
        assert job["status"] == "succeeded"
        assert job["model"] == "breast_cancer"

        missing = subprocess.run(
            [*INFERQ, "get", "nope", "--api", api], capture_output=True, text=True, timeout=60
        )
        assert missing.returncode == 1
        assert json.loads(missing.stdout)["error"]["code"] == "job_not_found"
    finally:
        dev.send_signal(signal.SIGTERM)
        output = dev.communicate(timeout=60)[0]
    assert dev.returncode == 0, output
    assert "SIGTERM: draining" in output
    assert not answers_kafka("127.0.0.1", broker_port)  # stopped with the stack
    assert output.count("garbage collector: a young collection every 20000 new objects") == 1


def test_a_second_signal_exits_at_once_and_takes_the_dev_broker_along(
    tmp_path: Path, model_repo: Path
) -> None:
    """The broker runs in a session of its own (a terminal's Ctrl-C reaches the stack
    first); a second signal exits without the orderly stop, and kills it on the way.
    SIGHUP (a closed terminal) stops the stack as SIGINT does."""
    api_port, broker_port = free_port(), free_port()
    dev = _start_dev(api_port, broker_port, model_repo)
    try:
        _wait_ready(f"http://127.0.0.1:{api_port}", dev)
        dev.send_signal(signal.SIGHUP)  # the terminal closed: stop in order
        seen = _read_until(dev, "SIGHUP: draining")
        dev.send_signal(signal.SIGTERM)
        output = seen + dev.communicate(timeout=60)[0]
    finally:
        if dev.poll() is None:
            dev.kill()
    assert dev.returncode == 128 + signal.SIGTERM, output
    assert "second SIGTERM: exiting now" in output
    assert not answers_kafka("127.0.0.1", broker_port)


def _read_until(process: subprocess.Popen[str], text: str) -> str:
    """What `process` wrote up to the line holding `text` (or up to its end: then the
    assertion fails; a process that goes quiet meets the test's timeout)."""
    assert process.stdout is not None
    lines: list[str] = []
    for line in iter(process.stdout.readline, ""):
        lines.append(line)
        if text in line:
            break
    output = "".join(lines)
    assert text in output, output
    return output


def test_dev_refuses_a_broker_port_that_is_taken(model_repo: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*INFERQ, "dev", "--broker-port", str(port), "--models", str(model_repo)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"port {port} on 127.0.0.1 is taken" in done.stderr


def test_get_without_an_api_is_exit_2() -> None:
    api = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [*INFERQ, "get", "j1", "--api", api], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"inferq get: no answer from {api}/v1/jobs/j1: ConnectError")


def free_ports_in_a_row(count: int) -> int:
    """The first of `count` consecutive loopback ports that are free now."""
    while True:
        first = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in range(first + 1, first + count):
                    held.enter_context(socket.create_server(("127.0.0.1", port)))
            except OSError:
                continue
            return first


async def test_worker_processes_serve_and_stop_on_sigterm(
    broker: DevBroker,
    model_repo: Path,
    api_settings: ApiSettings,
    producer_settings: ProducerSettings,
) -> None:
    env = {
        **os.environ,
        "INFERQ_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "INFERQ_TOPIC_PREFIX": api_settings.topic_prefix,
        "INFERQ_MODEL_REPOSITORY": str(model_repo),
        "INFERQ_MODELS": '["breast_cancer"]',
        "INFERQ_WORKER_NAME": "pool",
        "INFERQ_REFRESH_INTERVAL_S": "0.5",
        "INFERQ_REQUEST_PARTITIONS": "2",
        "INFERQ_SESSION_TIMEOUT_MS": "2000",
        "INFERQ_HEARTBEAT_INTERVAL_MS": "500",
        "INFERQ_GC_THRESHOLD": "1234",
    }
    worker = await asyncio.create_subprocess_exec(
        *INFERQ,
        "worker",
        "--processes",
        "2",
        "--port",
        str(port := free_ports_in_a_row(2)),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with running_api(api_settings) as api:

            async def both_children() -> list[str] | None:
                models = (await api.get("/v1/models")).json()["models"]
                workers = sorted(models[0]["workers"]) if models else []
                return workers if workers == ["pool-0", "pool-1"] else None

            assert await eventually(both_children, within_s=60) == ["pool-0", "pool-1"]
            async with httpx.AsyncClient() as http:
                for child_port in (port, port + 1):
                    ready = await http.get(f"http://127.0.0.1:{child_port}/readyz")
                    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
            features, _ = dataset("breast_cancer")
            async with AsyncClient(settings=producer_settings) as client:
                ids = [
                    await client.submit("breast_cancer", {"input": features[i : i + 1]})
                    for i in range(20)
                ]
            jobs = [await wait_terminal(api, job_id) for job_id in ids]
        assert {job["status"] for job in jobs} == {"succeeded"}
        assert {job["worker"] for job in jobs} <= {"pool-0", "pool-1"}
    finally:
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            output = (await worker.communicate())[0].decode()
    assert worker.returncode == 0, output
    assert output.count("SIGTERM: draining") == 2
    assert output.count("garbage collector: a young collection every 1234 new objects") == 2


async def test_worker_and_api_processes_set_the_garbage_collector(
    broker: DevBroker, prefix: str, model_repo: Path, tmp_path: Path
) -> None:
    settings = {
        **base_settings(broker.bootstrap_servers, prefix),
        "model_repository": model_repo,
        "models": ["breast_cancer"],
        "gc_threshold": 4321,
    }
    line = "garbage collector: a young collection every 4321 new objects"
    with Supervisor(tmp_path / "logs", settings) as supervisor:
        started = [supervisor.worker("w"), supervisor.api("api", tmp_path / "api.db")]

        def logged(service: Service) -> Callable[[], Awaitable[bool | None]]:
            async def probe() -> bool | None:
                return line in service.log() or None

            return probe

        for service in started:
            await service.until(logged(service), "logging its garbage collector")
    assert [service.log().count(line) for service in started] == [1, 1]


def test_the_demo_builds_the_demo_models_a_repository_lacks(
    tmp_path: Path, model_repo: Path
) -> None:
    """`make demo` on a repository of other models (say after `inferq models build
    minilm`) builds the two it runs, and only those."""
    shutil.copytree(model_repo / "diabetes", tmp_path / "diabetes")
    built = build_missing_demo_models(tmp_path)
    assert built == [tmp_path / "breast_cancer" / "1" / "model.onnx"]
    assert built[0].is_file()
    assert build_missing_demo_models(tmp_path) == []
