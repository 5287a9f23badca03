"""What a worker heartbeat is, whatever keeps it: the checks every heartbeat store makes.

A heartbeat is a JSON object with ``at`` (epoch seconds of the beat) and
whatever the worker adds; a worker id names one worker process and becomes
a file name or a Redis key. Reading never fails on what a store holds: a
value that is not a heartbeat is skipped, so one bad entry cannot hide the
live workers beside it.
"""

from __future__ import annotations

import math
import re
from typing import Any

# A worker id becomes a file name (Redis: a key).
WORKER_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,200}")

# A heartbeat is a few hundred bytes; a bigger value is not one.
MAX_BYTES = 64 * 1024


def valid_heartbeat(value: Any) -> dict[str, Any] | None:
    """``value`` as a heartbeat with a float ``at``, or None when it is not one."""
    if not isinstance(value, dict):
        return None
    at = value.get("at")
    # bool is an int; NaN and infinities would make any age look fresh.
    if isinstance(at, bool) or not isinstance(at, int | float):
        return None
    try:
        at = float(at)
    except OverflowError:
        return None
    if not math.isfinite(at):
        return None
    return {**value, "at": at}


def check_worker(worker: str) -> str:
    if not isinstance(worker, str) or WORKER_PATTERN.fullmatch(worker) is None:
        raise ValueError(f"invalid worker id {worker!r}")
    return worker
