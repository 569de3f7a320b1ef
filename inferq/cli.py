"""The `inferq` command."""

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from inferq.collector import CollectorSettings, tune_collector
from inferq.logs import setup_logging
from inferq.signals import stop_on_signals
from schemas import Datatype

# Each command imports what it runs, so that a worker process never loads the web stack
# and the API never loads ONNX Runtime.

log = logging.getLogger("inferq")


def _until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> int:
    async def runner() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await main(stop)

    asyncio.run(runner())
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from inferq.stack import local_stack

    tune_collector(CollectorSettings().gc_threshold)

    async def main(stop: asyncio.Event) -> None:
        async with local_stack(
            args.models,
            api_port=args.api_port,
            broker_port=args.broker_port,
            store=args.store,
            own_session=True,  # Ctrl-C stops the services first, the broker after them
        ) as stack:
            print(
                f"inferq dev: broker {stack.bootstrap_servers}  API {stack.api_url}/docs  "
                f"models {', '.join(stack.models)}  (Ctrl-C stops)",
                flush=True,
            )
            await stop.wait()

    return _until_signal(main)


def cmd_worker(args: argparse.Namespace) -> int:
    from worker import Worker, WorkerSettings
    from worker.processes import run_processes

    overrides: dict[str, Any] = {}
    if args.model:
        overrides["models"] = args.model
    if args.processes is not None:
        overrides["processes"] = args.processes
    if args.port is not None:
        overrides["worker_port"] = args.port
    settings = WorkerSettings(**overrides)
    if settings.processes > 1:
        return run_processes(settings, settings.processes)
    tune_collector(settings.gc_threshold)
    return _until_signal(Worker(settings).run)


def cmd_api(args: argparse.Namespace) -> int:
    from results_api.server import serve
    from results_api.settings import ApiSettings

    overrides = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
    settings = ApiSettings(**overrides)
    tune_collector(settings.gc_threshold)
    return _until_signal(lambda stop: serve(settings, stop))


def cmd_submit(args: argparse.Namespace) -> int:
    import numpy as np

    from producer import Client, SubmitError

    inputs: dict[str, Any] = {}
    for item in args.input:
        name, sep, data = item.partition("=")
        if not sep:
            raise SystemExit(f"--input takes NAME=JSON, got {item!r}")
        inputs[name] = np.asarray(json.loads(data), dtype=Datatype(args.datatype).numpy_dtype)
    with Client() as client:
        try:
            job_id = client.submit(args.model, inputs, job_id=args.job_id)
        except SubmitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        client.flush()
    print(job_id)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    import httpx

    from producer import ProducerSettings

    settings = ProducerSettings()
    url = f"{(args.api or settings.api_url).rstrip('/')}/v1/jobs/{quote(args.job_id, safe='')}"
    key = settings.api_key
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=30)
        answer = response.json()
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # none, or not JSON
        print(f"inferq get: no answer from {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2))
    return {200: 0, 404: 1}.get(response.status_code, 2)


def cmd_keys_new(args: argparse.Namespace) -> int:
    import re

    from results_api.auth import hash_key, new_key
    from schemas.messages import TENANT_PATTERN

    if not re.fullmatch(TENANT_PATTERN, args.tenant):
        print(
            f"error: tenant {args.tenant!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            file=sys.stderr,
        )
        return 2
    key = new_key()
    print(f"key: {key}")
    print(f"entry: {args.tenant}:{hash_key(key)}")
    return 0


def cmd_build_demo(args: argparse.Namespace) -> int:
    from inferq.demo_models import build_demo_models

    for path in build_demo_models(args.dir):
        print(path)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from inferq.builders import build

    for name in args.name:
        print(build(name, args.repo))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from inferq.demo import run_demo

    logging.getLogger().setLevel(logging.WARNING)  # the table is the output
    return asyncio.run(run_demo(args.models))


def cmd_store_rebuild(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from results_api.replay import ReplayError, rebuild
    from results_api.settings import ApiSettings
    from results_api.store import StoreError, redacted

    settings = ApiSettings()
    try:
        count = asyncio.run(rebuild(settings))
    except (ReplayError, StoreError, KafkaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"replayed {count} events from {settings.topics.results} into {redacted(settings.store)}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="inferq", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run broker, worker and API locally until Ctrl-C")
    dev.add_argument("--api-port", type=int, default=8000)
    dev.add_argument("--broker-port", type=int, default=None, help="default: a free port")
    dev.add_argument("--models", type=Path, default=Path("models"), help="model repository")
    dev.add_argument("--store", default="sqlite:///inferq-results.db")
    dev.set_defaults(func=cmd_dev)

    worker = sub.add_parser("worker", help="run a worker (settings from INFERQ_* variables)")
    worker.add_argument("--model", action="append", help="serve this model (repeatable)")
    worker.add_argument("--processes", type=int, help="worker processes (INFERQ_PROCESSES)")
    worker.add_argument(
        "--port", type=int, help="/healthz, /readyz and /metrics on this port (INFERQ_WORKER_PORT)"
    )
    worker.set_defaults(func=cmd_worker)

    api = sub.add_parser("api", help="run the results API (settings from INFERQ_* variables)")
    api.add_argument("--port", type=int)
    api.add_argument("--host")
    api.set_defaults(func=cmd_api)

    submit = sub.add_parser("submit", help="submit one job through Kafka; prints its id")
    submit.add_argument("model")
    submit.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="NAME=JSON",
        help="e.g. input='[[0.1, 0.2]]' (repeatable)",
    )
    submit.add_argument("--datatype", default="FP32", choices=[d.value for d in Datatype])
    submit.add_argument("--job-id")
    submit.set_defaults(func=cmd_submit)

    get = sub.add_parser("get", help="print a job as the results API knows it")
    get.add_argument("job_id")
    get.add_argument("--api", help="the results API (default INFERQ_API_URL)")
    get.set_defaults(func=cmd_get)

    keys = sub.add_parser("keys", help="API key tools")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_new = keys_sub.add_parser(
        "new", help="make a key: `key` is for the client, `entry` for INFERQ_API_KEYS"
    )
    keys_new.add_argument("tenant")
    keys_new.set_defaults(func=cmd_keys_new)

    models = sub.add_parser("models", help="model repository tools")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    build = models_sub.add_parser("build-demo", help="build the demo models into DIR")
    build.add_argument("dir", nargs="?", type=Path, default=Path("models"))
    build.set_defaults(func=cmd_build_demo)
    named = models_sub.add_parser(
        "build", help="build named models: breast_cancer, diabetes, minilm, resnet18"
    )
    named.add_argument("name", nargs="+")
    named.add_argument("--repo", type=Path, default=Path("models"))
    named.set_defaults(func=cmd_build)

    demo = sub.add_parser("demo", help="run the local stack, submit jobs, print predictions")
    demo.add_argument("--models", type=Path, default=Path("models"))
    demo.set_defaults(func=cmd_demo)

    store = sub.add_parser("store", help="result store tools (settings from INFERQ_* variables)")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    rebuild = store_sub.add_parser("rebuild", help="replay the results topic into the store")
    rebuild.set_defaults(func=cmd_store_rebuild)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result
