"""The one clock of the jobs app, and the one timestamp format of its documents.

Times are kept as ISO 8601 UTC strings with milliseconds and a ``Z``
(``2026-11-28T13:50:00.123Z``); services take ``now`` from :func:`now`,
which tests replace.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def to_iso(timestamp: float) -> str:
    """``2026-12-05T08:39:35.123Z``: UTC, to the millisecond (truncated).

    The same text as ``datetime.fromtimestamp(timestamp, UTC)`` formatted,
    with the date and time of day formatted once per second: this runs
    several times for every job written, mostly for times a batch of jobs
    shares, and the cached second costs a fifth of the whole formatting.
    """
    global _second
    # datetime's own rounding to microseconds (half to even), carried into the second.
    fraction, whole = math.modf(timestamp)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    seconds = int(whole)
    cached = _second
    if cached[0] != seconds:
        m = datetime.fromtimestamp(seconds, tz=UTC)
        cached = _second = (
            seconds,
            f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}",
        )
    return f"{cached[1]}.{micros // 1000:03d}Z"


# The last second :func:`to_iso` formatted, and its text (one tuple: threads swap it whole).
_second: tuple[int, str] = (-(2**63), "")


def from_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
