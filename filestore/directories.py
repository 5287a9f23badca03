"""Listing and tidying the directories of the store (buckets, leaves, queues)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from filestore.atomic import fsync_dir


def listdir(directory: Path) -> list[str]:
    """The names in ``directory``; none when it is gone or is a stray file, not a directory."""
    try:
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []


def listdir_desc(directory: Path, upto: str | None) -> list[str]:
    """Sorted names in ``directory`` (newest first), skipping those after ``upto``."""
    names = listdir(directory)
    if upto is not None:
        names = [name for name in names if name <= upto]
    names.sort(reverse=True)
    return names


def remove_if_empty(directory: Path) -> None:
    try:
        os.rmdir(directory)
    except OSError as exc:
        # Not empty (a writer just filled it) or already removed by
        # another process: both fine.
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            raise


def unlink_all(paths: Iterable[Path]) -> int:
    """Unlink ``paths``, then fsync each directory touched once (not once per file)."""
    removed = 0
    directories: set[Path] = set()
    for path in list(paths):
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed += 1
        directories.add(path.parent)
    for directory in directories:
        fsync_dir(directory)
    return removed
