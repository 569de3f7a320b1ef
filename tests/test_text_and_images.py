"""Text in, embeddings out (minilm), and the image model, through the real broker."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from producer import AsyncClient, ProducerSettings
from results_api.settings import ApiSettings
from tests.support import output, running_api, running_worker, wait_terminal
from worker import WorkerSettings

TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]


def reference_embeddings(repo: Path, texts: list[str]) -> npt.NDArray[Any]:
    """The ONNX file run directly on the tokenizer's output, as the worker should."""
    tokenizer = Tokenizer.from_file(str(repo / "minilm" / "tokenizer.json"))
    tokenizer.enable_padding(length=32)
    tokenizer.enable_truncation(max_length=32)
    encoded = tokenizer.encode_batch(texts)
    feeds = {
        "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
    }
    session = ort.InferenceSession(str(repo / "minilm" / "1" / "model.onnx"))
    result: npt.NDArray[Any] = session.run(None, feeds)[0]
    return result


@contextlib.asynccontextmanager
async def serving(
    model: str, repo: Path, worker_settings: WorkerSettings, api_settings: ApiSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """A worker serving only `model` from `repo`, and the API."""
    settings = worker_settings.model_copy(update={"model_repository": repo, "models": [model]})
    async with running_worker(settings), running_api(api_settings) as api:
        yield api


async def test_texts_become_embeddings(
    torch_repo: Path,
    worker_settings: WorkerSettings,
    api_settings: ApiSettings,
    producer_settings: ProducerSettings,
) -> None:
    model = "minilm"
    async with serving(model, torch_repo, worker_settings, api_settings) as api:
        async with AsyncClient(settings=producer_settings) as client:
            together = await client.submit("minilm", {"text": np.array(TEXTS, dtype=object)})
            alone = await client.submit("minilm", {"text": np.array(TEXTS[:1], dtype=object)})
        job = await wait_terminal(api, together)
        single = await wait_terminal(api, alone)

    assert job["status"] == "succeeded"
    embeddings = output(job, "embedding")
    assert embeddings.shape == (3, 384)
    np.testing.assert_allclose(embeddings, reference_embeddings(torch_repo, TEXTS), atol=1e-5)
    np.testing.assert_allclose(output(single, "embedding"), embeddings[:1], atol=1e-5)
    similarity = embeddings @ embeddings.T
    # all-MiniLM-L6-v2's published similarity of the first two sentences is 0.755
    assert round(float(similarity[0, 1]), 2) == 0.76
    assert similarity[0, 1] > similarity[0, 2]


async def test_text_to_a_model_that_wants_numbers_fails_clearly(
    torch_repo: Path,
    worker_settings: WorkerSettings,
    api_settings: ApiSettings,
    producer_settings: ProducerSettings,
) -> None:
    model = "minilm"
    async with serving(model, torch_repo, worker_settings, api_settings) as api:
        async with AsyncClient(settings=producer_settings) as client:
            job_id = await client.submit("minilm", {"text": np.ones((1, 3), np.float32)})
        job = await wait_terminal(api, job_id)
    assert job["error"] == {
        "code": "invalid_input",
        "message": "input 'text' expects BYTES [?], got FP32 [1, 3]",
    }


async def test_image_model_runs_in_batches(
    torch_repo: Path,
    worker_settings: WorkerSettings,
    api_settings: ApiSettings,
    producer_settings: ProducerSettings,
) -> None:
    model = "resnet18"
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 224, 224), dtype=np.uint8)
    direct = ort.InferenceSession(str(torch_repo / "resnet18" / "1" / "model.onnx"))
    expected = direct.run(None, {"image": images})[0]
    async with serving(model, torch_repo, worker_settings, api_settings) as api:
        async with AsyncClient(settings=producer_settings) as client:
            ids = [await client.submit("resnet18", {"image": images[i : i + 1]}) for i in (0, 1)]
        jobs = [await wait_terminal(api, job_id) for job_id in ids]
    for i, job in enumerate(jobs):
        logits = output(job, "logits")
        assert logits.shape == (1, 1000)
        np.testing.assert_allclose(logits, expected[i : i + 1], rtol=1e-4, atol=1e-4)
