"""Worker heartbeats and the health report behind ``GET /api/health``.

Each worker process writes ``worker/<host>-<pid>.json`` every few seconds;
the worker counts as alive when the newest heartbeat is younger than
``JOBS_HEARTBEAT_MAX_AGE``.

The report never fails itself: whatever the data directory holds (a torn
or hostile heartbeat file, a directory that cannot be read), each check
ends as passed or failed, and a failed one says why.
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
from pathlib import Path
from typing import Any

from django.conf import settings

from filestore import atomic
from jobs import clock, photos, store


def _heartbeat_dir() -> Path:
    return store.data_dir() / "worker"


def heartbeat_path() -> Path:
    return _heartbeat_dir() / f"{socket.gethostname()}-{os.getpid()}.json"


def write_heartbeat(**details: Any) -> None:
    atomic.ensure_dir(_heartbeat_dir())
    document = {"at": clock.now(), "pid": os.getpid(), "host": socket.gethostname(), **details}
    atomic.write_atomic(heartbeat_path(), atomic.dumps(document), tmp_dir=store.data_dir() / "tmp")


def remove_heartbeat() -> None:
    atomic.unlink_durable(heartbeat_path())


# A heartbeat is a few hundred bytes; a bigger file is not one.
_HEARTBEAT_MAX_BYTES = 64 * 1024


def _read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat in ``path``, or None when the file is not a readable heartbeat."""
    try:
        with path.open("rb") as file:
            beat = json.loads(file.read(_HEARTBEAT_MAX_BYTES + 1))
    # RecursionError: deeply nested JSON; OSError: a directory, no permission, EIO.
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(beat, dict):
        return None
    at = beat.get("at")
    # bool is an int; NaN and infinities would make any age look fresh.
    if isinstance(at, bool) or not isinstance(at, int | float):
        return None
    try:
        at = float(at)
    except OverflowError:
        return None
    if not math.isfinite(at):
        return None
    return {**beat, "at": at}


def latest_heartbeat() -> dict[str, Any] | None:
    """The newest heartbeat of any worker (files that are not heartbeats are ignored)."""
    newest = None
    try:
        paths = list(_heartbeat_dir().iterdir())
    except FileNotFoundError:
        return None
    for path in paths:
        beat = _read_heartbeat(path)
        if beat is not None and (newest is None or beat["at"] > newest["at"]):
            newest = beat
    return newest


def prune_heartbeats(*, older_than: float = 24 * 3600) -> int:
    """Remove heartbeats of workers long gone (killed ones never remove their own)."""
    removed = 0
    cutoff = clock.now() - older_than
    try:
        paths = list(_heartbeat_dir().iterdir())
    except FileNotFoundError:
        return 0
    for path in paths:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _os_reason(error: OSError) -> str:
    name = errno.errorcode.get(error.errno or 0)
    reason = error.strerror or str(error) or type(error).__name__
    return f"{reason} ({name})" if name else reason


def storage_problem() -> str | None:
    """Why the data directory cannot be written, or None when a durable write works."""
    try:
        probe = atomic.write_temp(store.data_dir() / "tmp", b"ok")
        probe.unlink()
    except OSError as error:
        return f"The data directory cannot be written: {_os_reason(error)}."
    return None


def broker_problem() -> str | None:
    """Why the queue cannot take messages, or None when it can."""
    try:
        if store.broker().ping():
            return None
    except Exception as error:  # a broker client may raise anything; the report must not
        if isinstance(error, OSError):
            return f"The queue cannot be reached: {_os_reason(error)}."
        return f"The queue cannot be reached: {type(error).__name__}."
    return "The queue cannot be reached or written."


def worker_problem(age: float | None) -> str | None:
    """Why no worker counts as alive, or None when one beat recently."""
    if age is None:
        return "No worker heartbeat; start one with `manage.py qcluster`."
    limit = settings.JOBS_HEARTBEAT_MAX_AGE
    if age > limit:
        return f"The newest worker heartbeat is {age:.0f} s old (at most {limit} s is alive)."
    return None


def health_report() -> tuple[bool, dict[str, Any]]:
    """Whether all is well, and the report: each check, and why those that failed did."""
    age = None
    try:
        beat = latest_heartbeat()
    except OSError as error:
        worker = f"The worker heartbeats cannot be read: {_os_reason(error)}."
    else:
        age = None if beat is None else max(0.0, clock.now() - beat["at"])
        worker = worker_problem(age)
    problems = {"storage": storage_problem(), "broker": broker_problem(), "worker": worker}
    checks = {name: problem is None for name, problem in problems.items()}
    healthy = all(checks.values())
    report = {
        "status": "ok" if healthy else "unhealthy",
        "checks": checks,
        "failures": {name: problem for name, problem in problems.items() if problem},
        "worker_heartbeat_age_seconds": None if age is None else round(age, 1),
        "photo_source": photos.source_name(),
    }
    return healthy, report
