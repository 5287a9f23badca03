"""Waiting longer after each failure in a row: the one rule behind every retry wait.

A job's next attempt after a transient failure (:func:`jobs.tasks.backoff_delay`,
with full jitter so that jobs failing together spread out) and the photo
gate's next probe of a rate-limited source (:mod:`jobs.photos.gate`, stretched
by a little jitter so that it never comes early) both wait :func:`doubling`.
"""

from __future__ import annotations


def doubling(first: float, cap: float, failures: int) -> float:
    """``first`` after one failure, twice as long after each further one, never above ``cap``."""
    # The exponent stops at 64 (far past any cap), so no count of failures overflows.
    return min(cap, first * 2 ** min(max(0, failures - 1), 64))
