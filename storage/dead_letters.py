"""Who hears of a message the queue gave up on: the dead-letter handler.

A queue knows only that it gave up on a message (delivered too often, or
unreadable) and what the message held: its key and payload. What that means
is decided above the storage, so that layer registers a handler here when
it starts, before any broker is made: the jobs app does so in
:meth:`jobs.apps.JobsConfig.ready`, which every process runs at start-up
(django-q2's cluster runs it before forking its pusher, workers and
monitor, which inherit it). Every broker made afterwards hands the handler
to its queue, which calls it once per dead-lettered message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

# (key, payload) of the message given up on; the key is None for a message without one.
DeadLetterHandler = Callable[[str | None, bytes], None]

_handler: DeadLetterHandler | None = None


def register(handler: DeadLetterHandler | None) -> DeadLetterHandler | None:
    """Make ``handler`` the one brokers made from now on report to; return the one before.

    ``None`` registers none: dead letters are then only kept (and logged).
    """
    global _handler
    if handler is not None and not callable(handler):
        raise TypeError(f"a dead-letter handler must be callable, not {handler!r}")
    previous, _handler = _handler, handler
    return previous


def registered() -> DeadLetterHandler | None:
    """The handler a broker hands to its queue."""
    return _handler


def report(handler: DeadLetterHandler | None, key: str | None, payload: bytes) -> None:
    """Tell ``handler`` (if any) that the message of ``key`` was dead-lettered.

    The message is already safely dead-lettered when this is called: a
    handler that raises is logged, never allowed to stop the consumer
    that found the message.
    """
    if handler is None:
        return
    try:
        handler(key, payload)
    except Exception:
        logger.exception("dead-letter handler failed for key %s", key)
