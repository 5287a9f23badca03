"""Spare files: files the store is done with, kept to be written again instead of deleted.

Why: a store that creates and deletes a few files per job spends most of
its CPU in the file system's inode allocator. On ext4 without a journal
(as on the machines our figures come from) the allocator passes over every
inode freed in the last minutes, reading each one's deletion time, so the
cost of creating a file grows with the rate of deletes: at a few hundred
jobs a second, creating one small file took 0.4 to 0.9 ms of CPU, against
0.01 ms for renaming or overwriting one. Other file systems also pay for
freeing blocks and inodes (and for discards, when mounted with ``discard``).

So a file that is no longer needed under its name (a job's previous
status, an acknowledged queue message, a claimed photo) is *retired*:
renamed into ``spare/`` beside the temp directory (``<data dir>/spare/``)
rather than unlinked. A new temp file
(:func:`filestore.atomic.write_temp`) takes a spare by renaming it to its
temp name, then overwrites it and cuts it to its new length. Creates then
mostly reuse inodes instead of allocating them, and steady work frees
none. The pool is bounded (:data:`LIMIT`): past it, a retired file is
unlinked as before. Only a file with no other name may be retired: a
spare is written into when reused, and so would be every name of it (the
queue's empty messages are links to one file, :mod:`filestore.empty_files`,
and are unlinked instead).

Why reusing is safe:

- *Exactly one taker.* A spare is taken by renaming it out of ``spare/``;
  of several processes renaming the same name exactly one succeeds, the
  others get ``ENOENT`` and try the next.
- *No reader sees the new content under the old name.* Readers open a
  name and read it without a lock, so a reader may still hold a file open
  when it is retired. A spare is only taken :data:`REUSE_AFTER_SECONDS`
  after it was retired (its name carries that time), far longer than a
  read takes; and a reader that still finds a document that does not match
  the name it opened checks that the name still leads to the file it read
  before calling the file damaged (see ``JobRepository._read``).
- *A temp file is garbage until it is renamed into place.* The data
  written into a spare is flushed before any name points at it, exactly as
  for a new file, so a crash at any step leaves either the spare (unused)
  or the complete new file.

After a power cut (not a process kill), a retire whose directory entry had
not reached the disk may be undone: the old name comes back, pointing at
the file that was reused since. Its content then belongs to another name
(another job, or another status of the same job), so readers see a
document that does not match its name and quarantine it; the job's
current name, written and flushed later, is unaffected.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import os
import random
import threading
import time
from pathlib import Path

from filestore import process_names

SPARE_DIR_NAME = "spare"
# Files kept at most, per pool (about one 4 KiB block each).
LIMIT = 4096
# A retired file is not reused before this many seconds have passed.
REUSE_AFTER_SECONDS = 1.0
# With no spare ready, the pool is listed again at most this often.
RELIST_SECONDS = 0.25
# How many of the spares ready to reuse a process keeps from one listing.
SAMPLE = 64


class SpareFiles:
    """The spare files of one temp directory (in ``spare/`` beside it), shared by every process.

    Each process keeps the names it knows of (its own retires, and the
    pool's listing) in memory, oldest first, and lists the directory again
    only when it has none ready to reuse.
    """

    def __init__(self, directory: Path, *, limit: int = LIMIT, clock=time.time) -> None:
        self.directory = directory
        self._prefix = os.path.join(directory, "")  # a spare's path is this and its name
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._names: collections.deque[str] = collections.deque()
        self._next_listing = float("-inf")
        self._more = False
        self._ready = False

    def _setup(self) -> None:
        if not self._ready:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._ready = True

    def retire(self, path: str | os.PathLike[str]) -> bool:
        """Remove ``path`` from its name, keeping the file as a spare; False if it was gone.

        Not flushed, like the unlink it replaces: a power cut may bring the
        name back (see the module docstring).
        """
        self._setup()
        name = f"{int(self._clock() * 1000):013d}.{process_names.pid()}.{process_names.token()}"
        with self._lock:
            full = len(self._names) >= self.limit
        try:
            if full:
                os.unlink(path)
                return True
            os.rename(path, self._prefix + name)
        except FileNotFoundError:
            return False
        with self._lock:
            self._names.append(name)
        return True

    def take(self, target: str | os.PathLike[str]) -> bool:
        """Rename a spare old enough to reuse to ``target``; False when there is none."""
        self._setup()
        while True:
            name = self._next_ready()
            if name is None:
                return False
            try:
                os.rename(self._prefix + name, target)
            except FileNotFoundError:
                continue  # another process took it first
            return True

    def _next_ready(self) -> str | None:
        now_ms = int(self._clock() * 1000)
        ripe_before = now_ms - int(REUSE_AFTER_SECONDS * 1000)
        with self._lock:
            if not self._ripe(ripe_before) and (
                self._more or time.monotonic() >= self._next_listing
            ):
                self._relist()
            if not self._ripe(ripe_before):
                return None
            return self._names.popleft()

    def _ripe(self, ripe_before: int) -> bool:
        return bool(self._names) and _retired_at(self._names[0]) <= ripe_before

    def _relist(self) -> None:
        """Read the pool again (other processes retire into it too); trim it past the limit.

        A process keeps a random sample of the spares ready to reuse, and of
        those not ready yet only the ones it retired itself: processes that
        listed the pool at the same time then mostly try different ones,
        instead of all racing for the same names as they ripen (a lost race
        is a failed rename: under load a quarter of the worker's renames
        were lost races).
        """
        self._next_listing = time.monotonic() + RELIST_SECONDS
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            names = []
        for extra in names[self.limit :]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._prefix + extra)
        names = names[: self.limit]
        ripe_before = int(self._clock() * 1000) - int(REUSE_AFTER_SECONDS * 1000)
        ripe = bisect.bisect_right(names, f"{ripe_before:013d}~")
        ready = random.sample(names[:ripe], min(ripe, SAMPLE))
        self._more = ripe > SAMPLE  # more are ready: list again as soon as these are used
        own = f".{process_names.pid()}."
        self._names = collections.deque(ready + [name for name in names[ripe:] if own in name])


def _retired_at(name: str) -> int:
    stamp, _, _ = name.partition(".")
    return int(stamp) if stamp.isdigit() else 0


_pools: dict[str, SpareFiles] = {}
_pools_lock = threading.Lock()


def spares_of(tmp_dir: str | os.PathLike[str]) -> SpareFiles:
    """The spare pool of the temp files of ``tmp_dir``, in ``spare/`` beside it (same file
    system); one object per directory and process."""
    key = os.fspath(tmp_dir)
    pool = _pools.get(key)
    if pool is None:
        with _pools_lock:
            pool = _pools.setdefault(key, SpareFiles(Path(key).parent / SPARE_DIR_NAME))
    return pool
