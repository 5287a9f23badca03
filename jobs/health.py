"""Worker heartbeats and the health report behind ``GET /api/health``.

Each worker process beats every few seconds into the heartbeat store the
deployment uses (:func:`jobs.backends.heartbeats`: files in the data
directory, or Redis); the worker counts as alive when the newest heartbeat
is younger than ``JOBS_HEARTBEAT_MAX_AGE``.

The report never fails itself: whatever the store holds (a torn or hostile
heartbeat file, a directory that cannot be read, Redis out of reach), each
check ends as passed or failed, and a failed one says why.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from pathlib import Path
from typing import Any

from django.conf import settings

from filestore import atomic
from filestore.heartbeats import FileHeartbeats
from jobs import admission, backends, capacity, clock, photos, store
from storage.owners import current_owner


def worker_id() -> str:
    """``<host>-<pid>``: this process among the workers of every host."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def heartbeat_path() -> Path:
    """This process's heartbeat file, where heartbeats are files (for operators and tests)."""
    return FileHeartbeats(store.data_dir() / "worker", store.data_dir() / "tmp").path(worker_id())


def write_heartbeat(**details: Any) -> None:
    document = {
        "at": clock.now(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        # The identity this cluster's leases carry: a lease whose owner's
        # heartbeat went silent can be taken back (jobs.liveness).
        "owner": current_owner(),
        **details,
    }
    backends.heartbeats().beat(worker_id(), document)


def remove_heartbeat() -> None:
    backends.heartbeats().remove(worker_id())


def latest_heartbeat() -> dict[str, Any] | None:
    """The newest heartbeat of any worker (entries that are not heartbeats are ignored)."""
    return backends.heartbeats().latest()


def prune_heartbeats(*, older_than: float = 24 * 3600) -> int:
    """Forget heartbeats of workers long gone (killed ones never remove their own)."""
    return backends.heartbeats().prune(before=clock.now() - older_than)


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
        "backlog": backlog_report(),
        "quarantined_files": _quarantined(),
    }
    return healthy, report


def backlog_report() -> dict[str, Any]:
    """How far behind the worker is, and whether creates are being refused for it.

    Cheap (a look at the due end of the queue), so a health probe can poll it.
    """
    try:
        broker = store.broker()
        lateness = broker.oldest_due_lateness()
        due = broker.due_within(0)
    except Exception:
        return {"oldest_due_lateness_seconds": None, "due": None, "refusing_creates": None}
    limit = settings.JOBS_MAX_LATENESS
    measured = capacity.measured()
    return {
        "oldest_due_lateness_seconds": round(lateness, 3),
        "due": due,
        # Jobs a second the workers measured they can run (None: not yet).
        "capacity_per_second": None if measured is None else round(measured, 1),
        "max_lateness_seconds": limit or None,
        "max_due_per_second": admission.due_limit() or None,
        "refusing_creates": bool(limit) and lateness > limit,
    }


def _quarantined() -> int | None:
    try:
        return store.repository().quarantined()
    except OSError:
        return None
