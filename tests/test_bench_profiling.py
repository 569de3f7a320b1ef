"""The summary `bench/e2e.py --profile` prints of a py-spy raw file."""

from bench.profiling import library, own_function, summarize

LOOP = (
    'process 7:"python -m inferq worker";<module> (inferq/__main__.py:5);main (inferq/cli.py:240);'
    "BaseEventLoop._run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:80)"
)
STACKS = [
    # a task of the event loop: preparing a request, inside pydantic
    f"{LOOP};Pipeline._take (worker/pipeline.py:118);prepare (worker/jobs.py:134);"
    "BaseModel.model_validate_json (pydantic/main.py:746) 5\n",
    # the same task, in its own line of code
    f"{LOOP};Pipeline._take (worker/pipeline.py:119) 3\n",
    # the event loop itself between callbacks, and waiting for the next event
    f"{LOOP.rpartition(';')[0]} 1\n",
    f"{LOOP.rpartition(';')[0]};EpollSelector.select (selectors.py:468) 1\n",
    # the inference thread, no event loop above it
    "_bootstrap (threading.py:1002);infer (worker/execute.py:40);"
    "InferenceSession.run (onnxruntime/capi/onnxruntime_inference_collection.py:220) 10\n",
    "\n",
]


def test_shares_by_library_of_the_innermost_frame() -> None:
    summary = summarize(STACKS)
    assert summary["samples"] == 20
    assert summary["self_by_library"] == {
        "onnxruntime": 0.5,
        "pydantic": 0.25,
        "inferq": 0.15,
        "asyncio": 0.05,
        "waiting": 0.05,
    }


def test_inferq_functions_below_the_event_loop_with_the_samples_under_them() -> None:
    summary = summarize(STACKS)
    # the entry points above the loop (cli.main, __main__) are in every sample: left out,
    # as are the samples of the loop itself
    assert summary["inferq_inclusive"] == {
        "worker/execute.py:infer": 0.5,
        "worker/pipeline.py:Pipeline._take": 0.4,
        "worker/jobs.py:prepare": 0.25,
    }


def test_an_empty_profile_has_no_shares() -> None:
    assert summarize([]) == {"samples": 0, "self_by_library": {}, "inferq_inclusive": {}}


def test_frames_are_placed_by_their_file() -> None:
    assert library("get (results_api/store.py:10)") == "inferq"
    assert library("send (aiokafka/producer/producer.py:400)") == "aiokafka"
    assert library("validate (pydantic_core/core.py:1)") == "pydantic"
    assert library("_run_code (<frozen runpy>:88)") == "python"
    assert library("loads (json/__init__.py:346)") == "json"
    assert own_function("send (aiokafka/producer/producer.py:400)") is None
    assert own_function("Batcher.add (worker/batcher.py:61)") == "worker/batcher.py:Batcher.add"
