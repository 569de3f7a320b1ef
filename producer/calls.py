"""The sync client's calls under way, by thread, and the close that waits for them.

`close()` marks the client closed, then waits for the submits and cancels under way in
other threads, so that their records are flushed (or reported) with the rest. A `close()`
from a signal handler that interrupted a call of the client on its own thread can neither
wait for that call nor flush: the call may hold kafka-python's locks, which a flush waits
for, forever. It is left to the interrupted call, which closes the client as it ends.
"""

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


def _leave(counts: Counter[int], me: int) -> None:
    counts[me] -= 1
    if not counts[me]:
        del counts[me]


class Calls:
    def __init__(self, close: Callable[[float | None], None]) -> None:
        self._close = close  # the client's, run by a call a handler's close interrupted
        # An RLock: a signal handler may call in while its thread holds it.
        self._state = threading.Condition(threading.RLock())
        self._closed = False
        self._sending: Counter[int] = Counter()  # submits and cancels, by thread
        self._inside: Counter[int] = Counter()  # every call, by thread
        self._deferred: dict[int, float | None] = {}  # by thread: the close's flush timeout

    @contextlib.contextmanager
    def call(self, *, sends: bool) -> Iterator[None]:
        """Around a call of the client; one that `sends` (a submit or cancel) raises once
        the client is closed, and is waited for by a close in another thread."""
        me = threading.get_ident()
        with self._state:
            if sends:
                if self._closed:
                    raise RuntimeError("the client is closed")
                self._sending[me] += 1
            self._inside[me] += 1
        try:
            yield
        except BaseException as exc:
            self._ended(me, sends, exc)
            raise
        self._ended(me, sends, None)

    def _ended(self, me: int, sends: bool, failed: BaseException | None) -> None:
        with self._state:
            if sends:
                _leave(self._sending, me)
            _leave(self._inside, me)
            self._state.notify_all()
            if self._inside[me] or me not in self._deferred:
                return
            timeout = self._deferred.pop(me)
        try:
            self._close(timeout)
        except Exception as exc:
            if failed is None:
                raise
            # the call's own error goes on (a SystemExit raised by the handler, say)
            log.warning("closing the client after a failed call: %s", exc)
            failed.add_note(f"closing the client afterwards also failed: {exc}")

    def closing(self, timeout: float | None) -> bool:
        """Mark the client closed. True once the submits and cancels of other threads have
        ended: the caller closes now. False when this thread is inside a call (a signal
        handler interrupted it): that call closes the client, with `timeout`, as it ends."""
        me = threading.get_ident()
        with self._state:
            self._closed = True
            if self._inside[me]:
                self._deferred[me] = timeout
                return False
            if others := self._sending.total():
                log.debug("close() waits for %d submit or cancel calls in other threads", others)
                self._state.wait_for(lambda: not self._sending.total())
        return True
