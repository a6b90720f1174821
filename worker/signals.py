"""SIGTERM/SIGINT handling through the event loop (never signal.signal).

The first signal asks for a drain; the second skips the grace period.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop, on_first: Callable[[], None], on_second: Callable[[], None]
) -> Callable[[], None]:
    """Install the handlers; returns a function that removes them again."""
    seen = [0]

    def handle(sig: signal.Signals) -> None:
        seen[0] += 1
        if seen[0] == 1:
            logger.info("%s received: draining (send it again to skip the grace period)", sig.name)
            on_first()
        else:
            logger.warning("%s received again: handing back running tasks now", sig.name)
            on_second()

    installed: list[signal.Signals] = []
    for sig in SIGNALS:
        try:
            loop.add_signal_handler(sig, handle, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            logger.debug("cannot install a handler for %s here", sig.name)

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove
