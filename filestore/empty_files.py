"""Empty files made as links to one shared empty file.

A queue message whose payload is implied by its key is an empty file
(:mod:`filestore.queue`): only its name matters. Made as a file of its own,
each such message costs an inode, and allocating one is the dearest step
of a create on ext4 without a journal (the allocator reads the deletion
time of every inode freed lately): on the machine of the README's figures,
creating an empty file took 65-160 us of CPU after a mass deletion, a hard
link to an existing file 11 us. Reusing a spare file instead
(:mod:`filestore.spares`) costs three system calls and keeps the pool
busy. So an empty message is a new name of an empty file that already
exists: a directory entry and nothing else.

Layout: ``<directory>/<pid>.<token>`` (the queue's ``empty/``), one file
per process (:func:`shared_empty_file` gives every queue object of a
process the same one), made on first use, so that processes do not
contend for one inode's lock.

Why it is safe:

- *The shared file stays empty.* Messages are renamed, read and removed,
  never written. The one path that writes into a file some name still
  leads to is a spare's reuse; so a keyed message (every link to a shared
  file is one) is unlinked when it is done with, never retired as a spare
  (:meth:`filestore.queue.FileQueue.acknowledge`), and this directory is
  not a temp or spare directory.
- *A crash at any step.* ``link()`` is atomic: the name exists, a complete
  empty message, or it does not. The shared file is flushed, with its
  directory, before its first link, so no flushed name ever leads to a
  file lost by a power cut.
- *Too many names.* A file system caps the names of one file (ext4 at
  65,000): past it (``EMLINK``) a new shared file is made and used from
  then on.
- *A shared file removed under its process* (by the sweep below, or an
  operator): the link fails with ``ENOENT`` and a new one is made.
- *Clean-up.* When a process makes a shared file, it removes the others
  that no message links to any more (``st_nlink == 1``) and whose names
  have not changed for :data:`IDLE_SECONDS` (a link or an unlink sets a
  file's ``ctime``): those of processes gone, mostly. Removing one a live
  process still uses costs that process one new file, nothing more.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable

from filestore import process_names
from filestore.atomic import PRIVATE_FILE_MODE, fsync_dir, hooks

# A shared file no name has been added to or removed from for this long, and
# with no name but its own, is removed by the next process that makes one.
IDLE_SECONDS = 60.0

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class SharedEmptyFile:
    """Makes empty files in one call each, as links to a shared empty file in ``directory``."""

    def __init__(self, directory: str, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._clock = clock
        self._lock = threading.Lock()
        self._current: str | None = None
        self._pid = 0

    def link(self, path: str) -> None:
        """Make ``path`` a new empty file; ``FileExistsError`` if the name is taken.

        ``FileNotFoundError`` when ``path``'s directory does not exist.
        """
        shared = self._shared(None)
        for _ in range(3):
            try:
                hooks.step("link", path)
                os.link(shared, path)
                return
            except FileNotFoundError:
                if os.path.lexists(shared):
                    raise  # the target's directory is missing, not the shared file
            except OSError as exc:
                if exc.errno != errno.EMLINK:
                    raise
            shared = self._shared(shared)
        raise OSError(errno.EMLINK, f"cannot link an empty file to {path}")

    def _shared(self, used_up: str | None) -> str:
        """This process's shared file; a new one if it is ``used_up`` (gone or full)."""
        with self._lock:
            current = self._current
            if current is None or current == used_up or self._pid != process_names.pid():
                current = self._make()
                self._current, self._pid = current, process_names.pid()
            return current

    def _make(self) -> str:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self._sweep()
        path = f"{self.directory}/{process_names.pid()}.{process_names.token()}"
        hooks.step("create", path)
        fd = os.open(path, _CREATE_FLAGS, PRIVATE_FILE_MODE)
        try:
            hooks.step("fsync", path)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.directory)
        return path

    def _sweep(self) -> int:
        """Remove the shared files nothing links to and that have been idle; return how many."""
        idle_before = self._clock() - IDLE_SECONDS
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.directory):
                with contextlib.suppress(FileNotFoundError):
                    status = entry.stat(follow_symlinks=False)
                    if status.st_nlink == 1 and status.st_ctime < idle_before:
                        os.unlink(entry.path)
                        removed += 1
        return removed


_shared_files: dict[str, SharedEmptyFile] = {}
_shared_files_lock = threading.Lock()


def shared_empty_file(directory: str | os.PathLike[str]) -> SharedEmptyFile:
    """The :class:`SharedEmptyFile` of ``directory``: one object per directory and process."""
    key = os.fspath(directory)
    shared = _shared_files.get(key)
    if shared is None:
        with _shared_files_lock:
            shared = _shared_files.setdefault(key, SharedEmptyFile(key))
    return shared
