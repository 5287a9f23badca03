"""The one clock of the jobs app, and the one timestamp format of its documents.

Times are kept as ISO 8601 UTC strings with milliseconds and a ``Z``
(``2026-11-28T13:50:00.123Z``); services take ``now`` from :func:`now`,
which tests replace.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def to_iso(timestamp: float) -> str:
    """``2026-12-05T08:39:35.123Z``: UTC, to the millisecond (truncated)."""
    m = datetime.fromtimestamp(timestamp, tz=UTC)
    # Not strftime: this runs several times for every job written, and the
    # fields formatted directly cost a quarter less.
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond // 1000:03d}Z"
    )


def from_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
