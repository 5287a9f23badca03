"""Worker heartbeats as files: :class:`FileHeartbeats`.

:class:`storage.protocols.HeartbeatStore` is what the health report needs
of any backend; here each worker process keeps one file,
``<root>/<worker>.json``, replaced atomically at every beat, so every
process on the machine (and every host mounting the data directory) reads
the same heartbeats.

Reading never fails on what the directory holds: a torn, oversized or
hostile file is not a heartbeat (:func:`storage.heartbeats.valid_heartbeat`)
and is skipped, so one bad file cannot hide the live workers beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from filestore import atomic
from storage.heartbeats import MAX_BYTES, check_worker, valid_heartbeat


class FileHeartbeats:
    """The heartbeat store on files: one ``<worker>.json`` per worker process."""

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
