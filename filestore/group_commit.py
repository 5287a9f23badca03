"""Group commit: durable writes made at the same time share their flushes.

Making a file durable costs a flush of its data and one of its directory
entry. Writes that happen together (the creates of concurrent request
threads, the final states of one batch of jobs) can share those flushes:
:func:`sync` makes many paths durable with one ``syncfs()`` of their file
system, and :class:`GroupCommitter` lets threads that ask at the same time
wait on one :func:`sync` of everything they asked for.

The order that makes a Maildir write crash-safe stays: a file's data is
durable before its name is linked into place (:meth:`GroupCommitter.commit`
is called for the temp file, then the rename or link is made, then it is
called for the directory), so a crash never leaves a name pointing at
data that was not written.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from filestore import atomic


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes = [ctypes.c_int]
    syncfs.restype = ctypes.c_int
    return syncfs


_syncfs = _load_syncfs()


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Make the data of each file and the entries of each directory in ``paths`` durable.

    One path is fsynced on its own; several are flushed with one
    ``syncfs()`` of the file system holding the first (they must all be on
    it: every path of the store is under one data directory), which costs
    one flush however many there are. Without ``syncfs`` (not Linux), each
    is fsynced.
    """
    names = list(dict.fromkeys(os.fspath(path) for path in paths))
    if atomic.hooks.active:  # a stat per path, for the name of the step
        for name in names:
            atomic.hooks.step("fsync_dir" if os.path.isdir(name) else "fsync", name)
    if not names:
        return
    if len(names) == 1 or _syncfs is None:
        for name in names:
            _fsync(name)
        return
    fd = os.open(names[0], os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), names[0])
    finally:
        os.close(fd)


class GroupCommitter:
    """Makes paths durable for many threads at once: one flush per group of callers.

    A caller adds its paths and waits. If no flush is running, it becomes
    the leader: it takes every path added so far and flushes them with
    ``flush`` (default :func:`sync`) outside the lock; callers arriving
    meanwhile wait for the next flush, made by the first of them. A flush
    that fails fails every caller whose paths it carried.
    """

    def __init__(self, flush: Callable[[list[str]], None] = sync) -> None:
        self._flush = flush
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._pending: list[str] = []
        self._next_group = 1  # the group new paths join
        self._flushed = 0  # every group up to this one is settled
        self._errors: dict[int, BaseException] = {}
        self._flushing = False
        self.flushes = 0  # how many flushes were made (for benchmarks and tests)

    def commit(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Return once every path in ``paths`` is durable; raise if its flush failed."""
        names = [os.fspath(path) for path in paths]
        if not names:
            return
        with self._lock:
            self._pending.extend(names)
            group = self._next_group
            while self._flushed < group and self._flushing:
                self._done.wait()
            if self._flushed >= group:
                self._raise_if_failed(group)
                return
            # Lead: flush everything added so far, ours included.
            batch, self._pending = self._pending, []
            self._next_group += 1
            self._flushing = True
        error: BaseException | None = None
        try:
            self._flush(batch)
        except BaseException as exc:
            error = exc
        with self._lock:
            self.flushes += 1
            self._flushing = False
            self._flushed = group
            if error is not None:
                self._errors[group] = error
            self._done.notify_all()
            self._raise_if_failed(group)

    def _raise_if_failed(self, group: int) -> None:
        error = self._errors.get(group)
        if error is not None:
            # Older failures are of no use to anyone arriving later.
            for old in [key for key in self._errors if key < group - 64]:
                del self._errors[old]
            raise error


def directories_of(paths: Iterable[Path]) -> list[Path]:
    """The distinct parent directories of ``paths``, in order of first appearance."""
    return list(dict.fromkeys(path.parent for path in paths))
