"""Worker heartbeats as files: :class:`FileHeartbeats`.

:class:`HeartbeatStore` is what the health report needs of any backend;
here each worker process keeps one file, ``<root>/<worker>.json``, replaced
atomically at every beat, so every process on the machine (and every host
mounting the data directory) reads the same heartbeats.

Reading never fails on what the directory holds: a torn, oversized or
hostile file is not a heartbeat and is skipped, so one bad file cannot
hide the live workers beside it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Protocol

from filestore import atomic

# A worker id becomes a file name (Redis: a key).
WORKER_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,200}")

# A heartbeat is a few hundred bytes; a bigger file is not one.
MAX_BYTES = 64 * 1024


class HeartbeatStore(Protocol):
    """The heartbeats of the worker processes, shared by every process that reads them.

    A heartbeat is a JSON object with ``at`` (epoch seconds of the beat)
    and whatever the worker adds; ``worker`` names one worker process.
    """

    def beat(self, worker: str, heartbeat: dict[str, Any]) -> None:
        """Replace ``worker``'s heartbeat."""
        ...

    def remove(self, worker: str) -> None:
        """Forget ``worker`` (it stopped cleanly); unknown workers are fine."""
        ...

    def latest(self) -> dict[str, Any] | None:
        """The heartbeat with the newest ``at`` of any worker, or None."""
        ...

    def beats(self) -> list[dict[str, Any]]:
        """The last heartbeat of every worker not forgotten yet, in no order."""
        ...

    def prune(self, *, before: float) -> int:
        """Forget workers whose last beat came before ``before``; return how many."""
        ...


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


class FileHeartbeats:
    """:class:`HeartbeatStore` on files: one ``<worker>.json`` per worker process."""

    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = Path(tmp_dir)

    def path(self, worker: str) -> Path:
        return self.root / f"{check_worker(worker)}.json"

    def beat(self, worker: str, heartbeat: dict[str, Any]) -> None:
        path = self.path(worker)
        atomic.ensure_dir(self.root)
        atomic.write_atomic(path, atomic.dumps(heartbeat), tmp_dir=self.tmp_dir)

    def remove(self, worker: str) -> None:
        atomic.unlink_durable(self.path(worker))

    def latest(self) -> dict[str, Any] | None:
        return max(self.beats(), key=lambda beat: beat["at"], default=None)

    def beats(self) -> list[dict[str, Any]]:
        try:
            paths = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        return [beat for beat in map(_read, paths) if beat is not None]

    def prune(self, *, before: float) -> int:
        removed = 0
        try:
            paths = list(self.root.iterdir())
        except FileNotFoundError:
            return 0
        for path in paths:
            beat = _read(path)
            try:
                # A file that is not a readable heartbeat goes too, by its age.
                at = path.stat().st_mtime if beat is None else beat["at"]
                if at < before:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _read(path: Path) -> dict[str, Any] | None:
    """The heartbeat in ``path``, or None when the file is not a readable heartbeat."""
    try:
        with path.open("rb") as file:
            return valid_heartbeat(json.loads(file.read(MAX_BYTES + 1)))
    # RecursionError: deeply nested JSON; OSError: a directory, no permission, EIO.
    except (OSError, ValueError, RecursionError):
        return None
