"""Worker heartbeats and the health report behind ``GET /api/health``.

Each worker process writes ``worker/<host>-<pid>.json`` every few seconds;
the worker counts as alive when the newest heartbeat is younger than
``JOBS_HEARTBEAT_MAX_AGE``.
"""

from __future__ import annotations

import json
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


def latest_heartbeat() -> dict[str, Any] | None:
    newest = None
    try:
        paths = list(_heartbeat_dir().iterdir())
    except FileNotFoundError:
        return None
    for path in paths:
        try:
            beat = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        # A file in there that is not a heartbeat must not break the health check.
        if not isinstance(beat, dict) or not isinstance(beat.get("at"), int | float):
            continue
        if newest is None or beat["at"] > newest["at"]:
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


def storage_writable() -> bool:
    try:
        probe = atomic.write_temp(store.data_dir() / "tmp", b"ok")
        probe.unlink()
        return True
    except OSError:
        return False


def health_report() -> tuple[bool, dict[str, Any]]:
    beat = latest_heartbeat()
    age = None if beat is None else max(0.0, clock.now() - float(beat.get("at", 0)))
    try:
        broker_ok = bool(store.broker().ping())
    except Exception:
        broker_ok = False
    checks = {
        "storage": storage_writable(),
        "broker": broker_ok,
        "worker": age is not None and age <= settings.JOBS_HEARTBEAT_MAX_AGE,
    }
    report = {
        "status": "ok" if all(checks.values()) else "unhealthy",
        "checks": checks,
        "worker_heartbeat_age_seconds": None if age is None else round(age, 1),
        "photo_source": photos.source_name(),
    }
    return all(checks.values()), report
