"""Stop on the first SIGINT, SIGTERM or SIGHUP (a closed terminal); exit at once on the
second (after the hooks that `before_exit` registered: child processes that would outlive
the exit)."""

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)

_before_exit: list[Callable[[], None]] = []


def before_exit(hook: Callable[[], None]) -> Callable[[], None]:
    """Run `hook` before exiting at once; returns what takes it off again."""
    _before_exit.append(hook)
    return lambda: _before_exit.remove(hook)


def exit_now(code: int) -> None:
    for hook in list(_before_exit):
        with contextlib.suppress(Exception):  # exiting anyway: each hook gets its turn
            hook()
    os._exit(code)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", sig.name)
            exit_now(128 + sig.value)
        log.info("%s: draining (send it again to exit at once)", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, handle, sig)
