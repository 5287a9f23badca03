"""Storage of the photo pool: unused photos, and the state of the rate-limit gate.

What to keep, when to fetch and what a rate limit means is decided in
``jobs.photos``; this module only stores.
:class:`storage.protocols.PhotoPoolStore` is what the job domain needs of
any backend; :class:`FilePhotoPoolStore` keeps it in files under ``<JOBS_DATA_DIR>/photos/``::

    pool/<fetched_ms>-<batch>-<part>-<count>.json   unused photos of one fetch
    fetch.lock                               flock held while fetching a batch
    rate_limit.json                          the gate's state (a JSON object)

- ``<fetched_ms>`` is the fetch time in epoch milliseconds, zero-padded to
  13 digits, so names sort oldest first and the age of an entry is read
  from its name (no file read to expire it). ``<batch>`` is 8 random hex
  digits, ``<part>`` counts the entries the batch was kept in (3 digits,
  000 for the fetch itself), ``<count>`` is how many photos the entry
  holds, so the pool's size is read from names too. The file holds
  ``{"fetched_at": <epoch seconds>, "batch": "<batch>", "photos": [...]}``.
  (Entries written before batches were kept whole,
  ``<fetched_ms>-<batch>-<index>.json`` holding one ``"photo"``, are still
  served.)
- An entry is written to ``tmp_dir`` and renamed into ``pool/`` (see
  ``filestore.atomic``), so a visible entry is always complete.
- A batch is kept as one file, and taken whole: a caller that needs fewer
  photos than the entry holds writes the rest back as the batch's next part.
  So a batch of jobs takes its photos with one read, one rename and at most
  one write, not one of each per photo.
- ``rate_limit.json`` is replaced atomically, and only written by the
  process holding ``fetch.lock``; it is read without the lock.

Why each photo goes to exactly one caller: an entry is claimed by reading
it and then retiring its name (renaming the file into the spare pool,
:mod:`filestore.spares`). Of several processes that read the same entry,
exactly one rename succeeds (the others get ``ENOENT``), and only that one
uses its photos (and writes back what it does not need, under a new name);
the rest move on to the next entry. Names are never reused (the part
number grows), so a claim cannot hit a newer entry of the same name. The
claim and the rest written back are made durable before a photo is
shown, so after a crash a handed-out photo cannot come back: before
``take_many`` returns, or, when its caller asks to flush them itself
(``flush=False``, the worker's batches), with the caller's next flush,
which includes ``claim_paths()`` and comes before any job shows a photo.
A crash between the claim and the write-back loses the rest, which costs
only photos fetched for nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filestore.atomic import (
    dumps,
    ensure_dir,
    fsync_dir,
    loads,
    read_bytes,
    retire,
    write_atomic,
    write_temp,
)

log = logging.getLogger(__name__)


_ENTRY_NAME = re.compile(r"^(\d{13,})-([0-9a-f]{8})-(\d{3})(?:-(\d{1,6}))?\.json$")


# Passes over the pool one take makes at most (see take_many).
_MOST_LOOKS = 32
# How long a take waits for the splits under way in its process: one takes
# microseconds, or a switch interval of the GIL.
_SPLIT_WAIT_SECONDS = 0.25


class _Splits:
    """The batches this process is splitting, per pool directory.

    Between a split's claim and the write-back of its rest, the batch is not
    in the pool. Another process hits that moment rarely (two renames
    apart), but another thread of this one often does: the splitting thread
    gives up the GIL for its claim's rename and may wait a switch interval
    (5 ms) to get it back. A caller that found the pool short looks again
    when a split was under way during its look, once that split is done,
    instead of fetching a batch early (and spending a call of the hourly
    budget). Each split has a number, so a caller waits for the splits
    begun before it waits only, not for the pool to go quiet.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._begun = 0  # splits numbered in any pool
        self._under_way: dict[str, set[int]] = {}

    def mark(self, key: str) -> int | None:
        """A mark to look back from: None while a split of ``key`` is under way."""
        with self._changed:
            return None if self._under_way.get(key) else self._begun

    @contextmanager
    def splitting(self, key: str) -> Iterator[None]:
        with self._changed:
            self._begun += 1
            number = self._begun
            self._under_way.setdefault(key, set()).add(number)
        try:
            yield
        finally:
            with self._changed:
                numbers = self._under_way.get(key, set())  # emptied in a forked child
                numbers.discard(number)
                if not numbers:
                    self._under_way.pop(key, None)
                self._changed.notify_all()

    def waited_for(self, key: str, mark: int | None, timeout: float) -> bool | None:
        """Wait for the splits of ``key`` begun so far, if one was under way since ``mark``.

        None: none was, nothing to wait for. True: they are done. False: not
        within ``timeout`` (a stuck split; the caller stops waiting for any).
        """
        with self._changed:
            if mark == self._begun:
                return None
            last = self._begun

            def done() -> bool:
                return all(number > last for number in self._under_way.get(key, ()))

            return self._changed.wait_for(done, timeout)


_splits = _Splits()
# A child forked while a thread of its parent was splitting must not inherit
# the lock held, nor wait for a split that goes on only in the parent.
os.register_at_fork(after_in_child=_splits.__init__)


@dataclass(frozen=True)
class _Entry:
    """A pool entry, as its name tells it."""

    name: str
    stamp: str  # the fetch time as named
    batch: str
    fetched_at: float
    part: int | None  # None: an entry of one photo, as written before batches were kept whole
    count: int


class FilePhotoPoolStore:
    """The photo pool's store on files (see the module's docstring for the layout)."""

    def __init__(self, root: Path, tmp_dir: Path, *, ttl_seconds: float) -> None:
        self.root = Path(root)
        self.tmp_dir = Path(tmp_dir)
        self.entries_dir = self.root / "pool"
        self.lock_path = self.root / "fetch.lock"
        self.state_path = self.root / "rate_limit.json"
        self._key = str(self.entries_dir.resolve())
        self.ttl_seconds = ttl_seconds
        ensure_dir(self.entries_dir)
        ensure_dir(self.tmp_dir)

    # --- Photos ---

    def take_many(self, count: int, now: float, *, flush: bool = True) -> list[dict[str, Any]]:
        taken: list[dict[str, Any]] = []
        claimed = False
        # An entry lost to another caller may come back at once as the rest of
        # its batch, and so may a batch another thread of this process is
        # splitting: look again before saying the pool is short. A look again
        # follows photos handed to another caller, and the pool only grows by
        # a fetch, made under the fetch lock: a caller holding it (about to
        # fetch) sees the pool only shrink. The cap is for a name that can
        # never be read nor claimed (a dangling symbolic link).
        patient = True
        for _ in range(_MOST_LOOKS):
            mark = _splits.mark(self._key)
            took, lost = self._take_into(taken, count, now)
            claimed = claimed or took
            if len(taken) >= count:
                break
            waited = _splits.waited_for(self._key, mark, _SPLIT_WAIT_SECONDS) if patient else None
            patient = waited is not False
            if not waited and not lost:
                break
        if claimed and flush:
            # Durable before any photo is shown: a power cut must not bring
            # back a photo that a job already shows. (A caller that flushes
            # anyway before showing them flushes claim_paths() with it.)
            fsync_dir(self.entries_dir)
        return taken

    def claim_paths(self) -> list[str]:
        # A claim takes names out of the pool's directory (and puts the rest
        # of a batch back in): its entries are what must reach the disk.
        return [os.fspath(self.entries_dir)]

    def _take_into(self, taken: list[dict[str, Any]], count: int, now: float) -> tuple[bool, bool]:
        """One pass over the pool, claiming entries until ``taken`` holds ``count`` photos.

        Returns whether it claimed an entry, and whether it lost one to
        another caller.
        """
        claimed = lost = False
        for entry in self._entries():
            if len(taken) >= count:
                break
            path = self.entries_dir / entry.name
            if self._expired(entry.fetched_at, now):
                _unlink_quietly(path)
                continue
            try:
                data = read_bytes(path)
            except FileNotFoundError:
                lost = True  # another caller claimed it
                continue
            photos = self._photos(entry, data)
            wanted = count - len(taken)
            # The rest is written before the claim and put in place right
            # after it, so that other callers hardly ever find the pool empty
            # while a batch they could have used is being split (see _Splits).
            rest = None
            if photos is not None and len(photos) > wanted:
                rest = self._document(entry, photos[wanted:], part=(entry.part or 0) + 1)
            tmp = write_temp(self.tmp_dir, rest[1], durable=False) if rest else None
            with _splits.splitting(self._key) if rest else nullcontext():
                # Retiring the name is the claim: exactly one of the readers
                # succeeds. The directory is flushed once for all the claims (take_many).
                won = retire(path, tmp_dir=self.tmp_dir)
                if won and rest is not None:
                    os.replace(tmp, self.entries_dir / rest[0])
            if not won:
                if tmp is not None:
                    _unlink_quietly(tmp)
                lost = True
                continue
            claimed = True
            if photos is None:
                log.error("Discarded unreadable photo pool entry %s", path)
                continue
            taken.extend(photos[:wanted])
        return claimed, lost

    @staticmethod
    def _photos(entry: _Entry, data: bytes) -> list[dict[str, Any]] | None:
        """The photos an entry holds; None when it cannot be read."""
        try:
            document = loads(data)
            photos = document["photos"] if entry.part is not None else [document["photo"]]
        except (ValueError, KeyError, TypeError):
            return None
        return photos if isinstance(photos, list) else None

    def add(self, photos: list[dict[str, Any]], now: float) -> None:
        if not photos:
            return
        entry = _Entry("", f"{round(now * 1000):013d}", secrets.token_hex(4), now, None, 0)
        name, data = self._document(entry, photos, part=0)
        # Not flushed: a power cut may take back the entries of the last
        # seconds (photos fetched for nothing) or leave one empty (discarded
        # as unreadable). A photo reaches a job only through a claim, which
        # is flushed before the job shows it (claim_paths), and that flush
        # of the pool's directory carries the entry's arrival with it. Under
        # a stream the pool is refilled tens of times a second: a flush of
        # the directory each time was a third of the worker's flushes.
        write_atomic(self.entries_dir / name, data, tmp_dir=self.tmp_dir, durable=False)

    @staticmethod
    def _document(entry: _Entry, photos: list[dict[str, Any]], *, part: int) -> tuple[str, bytes]:
        """The name and content of an entry holding ``photos`` of ``entry``'s batch."""
        document = {"fetched_at": entry.fetched_at, "batch": entry.batch, "photos": photos}
        return f"{entry.stamp}-{entry.batch}-{part:03d}-{len(photos)}.json", dumps(document)

    def size(self, now: float) -> int:
        # From the names' matches alone: an entry object each made a count
        # of a hundred entries cost half a millisecond.
        return sum(
            1 if count is None else int(count)
            for _, (stamp, _, _, count) in self._named_fields()
            if not self._expired(int(stamp) / 1000, now)
        )

    def clear(self) -> int:
        return sum(
            entry.count
            for entry in self._entries()
            if _unlink_quietly(self.entries_dir / entry.name)
        )

    def _entries(self) -> Iterator[_Entry]:
        """The pool's entries, oldest first, from their names.

        Parsed as they are asked for: a take stops after the first few, and
        under a stream the pool holds a hundred or more (what falls due in
        the next seconds, fetched ahead).
        """
        for name, (stamp, batch, part, count) in self._named_fields():
            fetched_at = int(stamp) / 1000
            if count is None:  # one photo per entry, as written before
                yield _Entry(name, stamp, batch, fetched_at, None, 1)
            else:
                yield _Entry(name, stamp, batch, fetched_at, int(part), int(count))

    def _named_fields(self) -> Iterator[tuple[str, tuple[str, str, str, str | None]]]:
        """Each entry's name and the fields in it (stamp, batch, part, count), oldest first."""
        try:
            names = os.listdir(self.entries_dir)
        except FileNotFoundError:
            return
        for name in sorted(names):
            match = _ENTRY_NAME.match(name)
            if match:
                yield name, match.groups()

    def _expired(self, fetched_at: float, now: float) -> bool:
        return now - fetched_at >= self.ttl_seconds

    # --- The gate ---

    @contextmanager
    def fetch_lock(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def read_gate(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("Ignoring unreadable photo rate-limit state %s", self.state_path)
            return {}
        return state if isinstance(state, dict) else {}

    def write_gate(self, state: dict[str, Any]) -> None:
        # Atomic, not flushed: it is written after every call to the photo
        # source (the budget left changes each time), and a state that a power
        # cut takes back only means one more call to learn it again (a probe
        # that a closed gate would have spared).
        write_atomic(self.state_path, dumps(state), tmp_dir=self.tmp_dir, durable=False)


def _unlink_quietly(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
