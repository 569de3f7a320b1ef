"""`inferq demo`: the whole path end to end on the demo models, printed as a table."""

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from inferq.demo_models import INPUT_NAME, build_missing_demo_models, dataset
from inferq.stack import local_stack
from producer import AsyncClient
from schemas import Tensor

SAMPLES = 4
TERMINAL = {"succeeded", "failed", "expired", "cancelled"}


def _reference(repo: Path, model: str, features: np.ndarray[Any, Any]) -> float:
    """The prediction of the ONNX file run directly, post-processed as the worker does."""
    session = ort.InferenceSession(str(repo / model / "1" / "model.onnx"))
    outputs = session.run(None, {INPUT_NAME: features[None, :]})
    if model == "breast_cancer":
        return float(outputs[0][0])
    return max(0.0, float(outputs[0][0][0]))


def _prediction(job: dict[str, Any]) -> str:
    if job["status"] != "succeeded":
        return f"{job['status']}: {job.get('error', {}).get('message')}"
    value = Tensor.model_validate(job["outputs"][0]).to_numpy().ravel()[0]
    return f"{value:.1f}" if value.dtype.kind == "f" else str(value)


async def _poll(http: httpx.AsyncClient, job_id: str, deadline: float) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = (await http.get(f"/v1/jobs/{job_id}")).json()
        if job.get("status") in TERMINAL or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.02)


async def run_demo(repo: Path) -> int:
    for built in build_missing_demo_models(repo):  # a repository of other models gets them
        print(f"built {built}")
    async with local_stack(repo) as stack, httpx.AsyncClient(base_url=stack.api_url) as http:
        print(
            f"broker {stack.bootstrap_servers}, results API {stack.api_url}, "
            f"models {', '.join(stack.models)}\n"
        )
        submitted: list[tuple[str, str, str, float, float]] = []
        async with AsyncClient(stack.bootstrap_servers) as client:
            for model in ("breast_cancer", "diabetes"):
                features, target = dataset(model)
                for i in range(SAMPLES):
                    row = features[i * 37]
                    expected = float(target[i * 37])
                    reference = _reference(repo, model, row)
                    if i % 2 == 0:
                        job_id = await client.submit(model, {INPUT_NAME: row[None, :]})
                        via = "SDK"
                    else:
                        tensor = Tensor.from_numpy(INPUT_NAME, row[None, :])
                        body = {"model": model, "inputs": [tensor.model_dump()]}
                        job_id = (await http.post("/v1/jobs", json=body)).json()["job_id"]
                        via = "HTTP"
                    submitted.append((model, via, job_id, expected, reference))
            await client.flush()
        deadline = time.monotonic() + 30
        print(
            f"{'model':<14}{'via':<6}{'job id':<34}{'prediction':>12}{'onnx direct':>13}"
            f"{'true value':>12}"
        )
        failures = 0
        for model, via, job_id, expected, reference in submitted:
            job = await _poll(http, job_id, deadline)
            failures += job["status"] != "succeeded"
            print(
                f"{model:<14}{via:<6}{job_id:<34}{_prediction(job):>12}{reference:>13.1f}"
                f"{expected:>12.1f}"
            )
        print(
            f"\n{len(submitted) - failures} of {len(submitted)} jobs succeeded; "
            "'true value' is the data set's label or target."
        )
        return 1 if failures else 0
