"""Times as the stores keep them: whole milliseconds since the epoch."""

from __future__ import annotations

import math


def to_ms(seconds: float) -> int:
    """Whole milliseconds, rounded down, as the queues keep due times and leases."""
    return int(seconds * 1000)


def round_up_to_ms(seconds: float) -> float:
    """``seconds`` moved up to a whole millisecond, never earlier than it.

    For a due time written where only milliseconds are kept (a queue's
    :func:`to_ms`, a document's timestamp): rounded down, it would name an
    instant before ``seconds``, and whatever wakes then would find itself
    early. The result lies half a millisecond into that millisecond, so
    that float error cannot make a reader that truncates to milliseconds
    read it one lower.
    """
    return (math.ceil(seconds * 1000) + 0.5) / 1000
