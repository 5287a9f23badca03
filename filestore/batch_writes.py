"""Writing several jobs at once, their new states made durable together (group commit)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from filestore import atomic
from filestore.group_commit import directories_of, sync
from filestore.job_names import STATUSES

if TYPE_CHECKING:
    from filestore.codec import Document
    from filestore.repository import Applied, JobRepository

T = TypeVar("T")


def apply_many(
    repository: JobRepository[T],
    changes: Sequence[tuple[str, Callable[[T], T | None]]],
    *,
    durable: bool = True,
) -> list[Applied[T] | None]:
    """Apply one change to each of several jobs; their new states become durable together.

    The batch form of ``JobRepository.apply`` (one entry per job, in order;
    None for a job that does not exist), holding the locks of all the jobs
    at once. The new documents are written to temp files, flushed together,
    renamed into place, and their directories flushed together: two flushes
    for the batch instead of two per job, with the same crash-safety as
    ``JobRepository.update`` (no name ever points at unflushed data; two
    names of one job resolve by revision). Job ids must be distinct.
    """
    from filestore.repository import Applied, JobNotFound

    repository.setup()
    ids = [job_id for job_id, _ in changes]
    if len(set(ids)) != len(ids):
        raise ValueError("apply_many needs distinct job ids")
    results: list[Applied[T] | None] = []
    planned: list[tuple[int, Path, Path, list[Path], Document]] = []
    with repository._locks.many(ids):
        listed = repository._resolve_locked_batch(ids)
        try:
            for job_id, change in changes:
                try:
                    current, paths = repository._resolve_among(job_id, listed[job_id])
                except JobNotFound:
                    results.append(None)
                    continue
                changed = change(current.item)
                if changed is None:
                    results.append(Applied(current.item, False))
                    continue
                new = dict(repository.codec.dump(changed))
                if new.get("id") != job_id or new.get("status") not in STATUSES:
                    raise ValueError("a change must keep the id and set a known status")
                new["revision"] = current.document["revision"] + 1
                target = repository.path_for(job_id, new["status"])
                tmp = atomic.write_temp(repository.tmp_dir, atomic.dumps(new), durable=False)
                planned.append((len(results), tmp, target, paths, new))
                results.append(None)  # filled in once written
            if durable:
                sync(tmp for _, tmp, _, _, _ in planned)
            for _, tmp, target, _, _ in planned:
                _rename_into_place(tmp, target)
            if durable:
                sync(directories_of(target for _, _, target, _, _ in planned))
        finally:
            for _, tmp, _, _, _ in planned:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        for index, _, target, paths, new in planned:
            for path in paths:
                if path != target:
                    atomic.retire(path, tmp_dir=repository.tmp_dir)
            results[index] = Applied(repository.codec.load(new), True)
    return results


def _rename_into_place(tmp: Path, target: Path) -> None:
    for _ in range(3):
        atomic.ensure_dir(target.parent)
        try:
            atomic.hooks.step("rename", target)
            os.replace(tmp, target)
            return
        except FileNotFoundError:
            if not tmp.exists():
                raise
            continue  # the leaf was removed as empty meanwhile: make it again
    raise OSError(f"could not write {target}")
