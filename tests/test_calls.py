"""The sync client's bookkeeping of its calls by thread (`producer.calls`), without Kafka:
what a close does while calls are under way, here and in other threads."""

import threading

import pytest

from producer.calls import Calls

WAIT_S = 10


class Closes:
    """A client's `close`, as `Calls` calls it back: notes the thread that ran it."""

    def __init__(self, error: Exception | None = None) -> None:
        self.threads: list[int] = []
        self.error = error

    def __call__(self, timeout: float | None) -> None:
        self.threads.append(threading.get_ident())
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("sends", [True, False])  # a submit or cancel; a flush or close
def test_a_close_inside_a_call_of_its_thread_is_left_to_that_call(sends: bool) -> None:
    closes = Closes()
    calls = Calls(closes)
    with calls.call(sends=sends):
        assert not calls.closing(2.5)  # as a signal handler's close would
        assert closes.threads == []
    assert closes.threads == [threading.get_ident()]
    with pytest.raises(RuntimeError, match=r"^the client is closed$"), calls.call(sends=True):
        pass


def test_a_close_left_to_a_call_is_run_by_that_call_not_by_another_threads() -> None:
    closes = Closes()
    calls = Calls(closes)

    def flush_elsewhere() -> None:
        with calls.call(sends=False):
            pass

    with calls.call(sends=True):
        assert not calls.closing(None)
        other = threading.Thread(target=flush_elsewhere)
        other.start()
        other.join(WAIT_S)
        assert closes.threads == []  # the other thread's call ended, and left it
    assert closes.threads == [threading.get_ident()]


def test_the_calls_own_error_goes_on_when_the_close_left_to_it_fails_too() -> None:
    closes = Closes(ConnectionError("2 job(s) not acknowledged"))

    def interrupted(calls: Calls, then: BaseException | None) -> None:
        with calls.call(sends=True):
            assert not calls.closing(None)  # a handler's close, then perhaps its exit
            if then is not None:
                raise then

    with pytest.raises(SystemExit) as caught:
        interrupted(Calls(closes), SystemExit(0))
    assert closes.threads == [threading.get_ident()]
    assert caught.value.__notes__ == [
        "closing the client afterwards also failed: 2 job(s) not acknowledged"
    ]
    with pytest.raises(ConnectionError, match="not acknowledged"):  # a call that did not fail
        interrupted(Calls(closes), None)


def test_a_close_outside_any_call_waits_for_the_sends_of_other_threads() -> None:
    calls = Calls(Closes())
    inside, release = threading.Event(), threading.Event()
    closed: list[bool] = []

    def other() -> None:
        with calls.call(sends=True):
            inside.set()
            assert release.wait(WAIT_S)

    def close() -> None:
        closed.append(calls.closing(None))

    sender = threading.Thread(target=other)
    sender.start()
    assert inside.wait(WAIT_S)
    closer = threading.Thread(target=close)
    closer.start()
    closer.join(0.05)
    assert closed == []  # still waiting for the other thread's send
    release.set()
    closer.join(WAIT_S)
    sender.join(WAIT_S)
    assert closed == [True]
