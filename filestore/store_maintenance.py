"""Cleaning up after crashed writers: leftover temp files and stale second names of a job."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filestore import atomic
from filestore.job_names import listdir, listdir_desc, parse_name

if TYPE_CHECKING:
    from filestore.repository import JobRepository

# Temp files older than this whose writer cannot be shown alive are leftovers.
STALE_TEMP_SECONDS = 600


def recover_store(repository: JobRepository[Any], *, now: float | None = None) -> dict[str, int]:
    """Remove temp files of dead writers and the older name of jobs that have two.

    A crash between writing a job's new name and removing its old one leaves
    two names; readers already take the higher revision, and this removes
    the other under the job's lock.
    """
    from filestore.repository import JobNotFound

    repository.setup()
    now = time.time() if now is None else now
    report = {"temp_files_removed": 0, "stale_names_removed": 0}
    for tmp in repository.tmp_dir.iterdir():
        if _temp_is_leftover(tmp, now):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                report["temp_files_removed"] += 1
    for leaf in _leaves(repository.jobs_dir):
        seen: dict[str, int] = {}
        for name in listdir(leaf):
            entry = parse_name(name)
            if entry is not None:
                seen[entry.id] = seen.get(entry.id, 0) + 1
        for job_id, names in seen.items():
            if names > 1:
                try:
                    report["stale_names_removed"] += repository.remove_stale_names(job_id)
                except JobNotFound:
                    continue
    return report


def _leaves(jobs_dir: Path):
    for top in listdir_desc(jobs_dir, None):
        for mid in listdir_desc(jobs_dir / top, None):
            for leaf in listdir_desc(jobs_dir / top / mid, None):
                yield jobs_dir / top / mid / leaf


def _temp_is_leftover(path: Path, now: float) -> bool:
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return False
    pid = atomic.temp_writer_pid(path.name)
    if pid is not None and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True  # its writer is gone
        except PermissionError:
            pass
    # Written in another container (or by an older version): only age tells.
    return age > STALE_TEMP_SECONDS
