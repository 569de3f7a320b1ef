"""Stop on the first SIGINT or SIGTERM; exit at once on the second."""

import asyncio
import logging
import os
import signal

log = logging.getLogger(__name__)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", sig.name)
            os._exit(128 + sig.value)
        log.info("%s: draining (send it again to exit at once)", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle, sig)
