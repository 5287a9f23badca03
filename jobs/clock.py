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
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
