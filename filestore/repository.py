"""The job repository: one JSON file per job, its status in its name.

On-disk format (all under the data directory)::

    jobs/<id[0:4]>/<id[4:6]>/<id[6:8]>/<id>_<status>.json
    tmp/         temp files of writes in progress (same file system)
    quarantine/  files that could not be read, moved aside
    locks/       a fixed set of lock files, one per stripe of job ids

The id is time-ordered (:mod:`filestore.ids`), so its first characters are
a time bucket: a top directory spans about 12 days, a middle one about 17
minutes and a leaf about one second. Listing newest-first walks the
buckets from the newest and stops as soon as a page is full, so a page
costs the same with a thousand jobs stored as with a million, and the
status filter works on names alone. Only the files of the returned page
are read.

Each file holds the job document; ``revision`` increases with every write.

Crash safety of a status change (``update``), step by step:

1. write ``<id>_<new>.json`` to ``tmp/``, fsync it, rename it into the leaf
   and fsync the leaf (:func:`filestore.atomic.write_atomic`);
2. unlink ``<id>_<old>.json`` (not fsynced: see below).

Dying before the rename of step 1 leaves only the old file (plus a temp
file that :meth:`JobRepository.recover` removes). Dying between 1 and 2
leaves two names for one job; every reader then takes the one with the
higher ``revision`` (the newer state), and ``recover`` or the next update
removes the other. So at every instant each job has exactly one readable,
correct state. The same holds when a power cut undoes the unlink of step
2, which is why it needs no fsync of its own. A worker's claim of a job
(``durable=False``) skips the fsyncs of step 1 too: losing it in a power
cut only means the job runs again.

Concurrent writers of one job take its lock (:mod:`filestore.stripe_locks`);
a create with a reserved id takes it to check that no name of its id exists
yet. Readers take no lock: every name they can open holds a complete
document. Durable writes made at the same time share their flushes
(:mod:`filestore.group_commit`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from filestore import atomic
from filestore.batch_writes import apply_many
from filestore.codec import Codec, Document, DocumentCodec
from filestore.group_commit import GroupCommitter
from filestore.ids import is_valid_id
from filestore.job_names import STATUSES, Entry, listdir, listdir_desc, parse_name
from filestore.quarantine import Quarantine
from filestore.store_maintenance import STALE_TEMP_SECONDS, recover_store
from filestore.stripe_locks import StripeLocks

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["STALE_TEMP_SECONDS", "STATUSES", "Codec", "Document", "Entry", "JobRepository"]


class JobNotFound(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job with id {job_id!r}.")
        self.job_id = job_id


class JobExists(Exception):
    pass


class CorruptJobFile(Exception):
    pass


@dataclass(frozen=True)
class _Stored(Generic[T]):
    document: Document
    item: T


@dataclass(frozen=True)
class Applied(Generic[T]):
    """A job after :meth:`JobRepository.apply`, and whether the change took effect."""

    item: T
    changed: bool


class JobRepository(Generic[T]):
    def __init__(self, root: Path, codec: Codec[T] | None = None) -> None:
        self.root = Path(root)
        self.codec: Codec[Any] = codec or DocumentCodec()
        self.jobs_dir = self.root / "jobs"
        self.tmp_dir = self.root / "tmp"
        self.quarantine_dir = self.root / "quarantine"
        self.locks_dir = self.root / "locks"
        self._ready = False
        self._locks = StripeLocks(self.locks_dir)
        self.quarantine = Quarantine(self.quarantine_dir)
        # Durable writes of concurrent threads share their flushes.
        self._committer = GroupCommitter()

    # -- layout -------------------------------------------------------------

    def setup(self) -> None:
        if self._ready:
            return
        for directory in (self.jobs_dir, self.tmp_dir, self.quarantine_dir, self.locks_dir):
            atomic.ensure_dir(directory)
        self._ready = True

    def leaf_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id[0:4] / job_id[4:6] / job_id[6:8]

    def path_for(self, job_id: str, status: str) -> Path:
        return self.leaf_dir(job_id) / f"{job_id}_{status}.json"

    # -- writes -------------------------------------------------------------

    def create(self, item: T, *, may_exist: bool = False) -> T:
        """Store a new job durably. Its document must carry ``id`` and ``status``.

        A fresh id cannot exist yet, and the exclusive link of the write
        suffices. With ``may_exist`` (an id reserved earlier, whose job may
        have been created and moved on meanwhile), every name of the id is
        probed first, under the job's lock: status changes hold it while
        they rename, so the probe is reliable.
        """
        self.setup()
        document = self.codec.dump(item)
        job_id, status = document["id"], document["status"]
        if not is_valid_id(job_id) or status not in STATUSES:
            raise ValueError(f"bad id or status: {job_id!r} {status!r}")
        document = {**document, "revision": 1}
        path = self.path_for(job_id, status)
        if not may_exist:
            if not self._write(path, document, exclusive=True):
                raise JobExists(job_id)
            return self.codec.load(document)
        with self._locks.one(job_id):
            if self._any_name(job_id) or not self._write(path, document, exclusive=True):
                raise JobExists(job_id)
        return self.codec.load(document)

    def update(
        self,
        job_id: str,
        change: Callable[[T], T | None],
        *,
        durable: bool = True,
    ) -> T:
        """Like :meth:`apply`, returning only the job after the change."""
        return self.apply(job_id, change, durable=durable).item

    def apply(
        self,
        job_id: str,
        change: Callable[[T], T | None],
        *,
        durable: bool = True,
    ) -> Applied[T]:
        """Apply ``change`` to the current job under the job's lock.

        ``change`` gets the current job and returns the new one, or None to
        leave the job as it is; it may raise to refuse. Returns the job after
        the change and whether ``change`` changed it.

        With ``durable=False`` the new state is written atomically but not
        fsynced: a power cut may bring back the previous state. For a state
        that may be lost and redone (a worker claiming a job: the job is then
        simply run again), this saves the fsyncs.

        Removing the old name is never fsynced: if a power cut brings it
        back, the job has two names and the higher revision still wins.
        """
        self.setup()
        with self._locks.one(job_id):
            current, paths = self._resolve(job_id)
            changed = change(current.item)
            if changed is None:
                return Applied(current.item, False)
            new = dict(self.codec.dump(changed))
            if new.get("id") != job_id or new.get("status") not in STATUSES:
                raise ValueError("a change must keep the id and set a known status")
            new["revision"] = current.document["revision"] + 1
            target = self.path_for(job_id, new["status"])
            self._write(target, new, durable=durable)
            for path in paths:
                if path != target:
                    atomic.retire(path, tmp_dir=self.tmp_dir)
            return Applied(self.codec.load(new), True)

    def delete(self, job_id: str, *, only_if: Callable[[T], bool] | None = None) -> T | None:
        """Remove a job's files; with ``only_if``, only when it holds for the
        current job (checked under the job's lock). Returns the removed
        job, or None when ``only_if`` refused."""
        self.setup()
        with self._locks.one(job_id):
            current, paths = self._resolve(job_id)
            if only_if is not None and not only_if(current.item):
                return None
            for path in paths:
                atomic.unlink_durable(path)
            return current.item

    def _write(
        self, path: Path, document: Document, *, exclusive: bool = False, durable: bool = True
    ) -> bool:
        """Write ``document`` to ``path``; with ``exclusive``, only if the name is free.

        The Maildir sequence of :mod:`filestore.atomic`, with the two flushes
        (the temp file's data, then the directory entry) made through the
        group committer: threads writing at the same time share them.
        """
        data = atomic.dumps(document)
        for _ in range(3):
            atomic.ensure_dir(path.parent)
            tmp = atomic.write_temp(self.tmp_dir, data, durable=False)
            try:
                if durable:
                    self._committer.commit([tmp])
                if exclusive:
                    atomic.hooks.step("link", path)
                    os.link(tmp, path)
                else:
                    atomic.hooks.step("rename", path)
                    os.replace(tmp, path)
            except FileExistsError:
                return False
            except FileNotFoundError:
                # The leaf was removed as empty between ensure_dir and the
                # rename; make it again.
                continue
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            if durable:
                self._committer.commit([path.parent])
            return True
        raise OSError(f"could not write {path}")

    def apply_many(
        self,
        changes: Sequence[tuple[str, Callable[[T], T | None]]],
        *,
        durable: bool = True,
    ) -> list[Applied[T] | None]:
        """Apply one change to each of several jobs; their new states become durable together.

        The batch form of :meth:`apply`; see :func:`filestore.batch_writes.apply_many`.
        """
        return apply_many(self, changes, durable=durable)

    # -- reads --------------------------------------------------------------

    def get(self, job_id: str) -> T:
        if not is_valid_id(job_id):
            raise JobNotFound(str(job_id)[:40])
        current, _ = self._resolve(job_id)
        return current.item

    def _resolve(self, job_id: str) -> tuple[_Stored[T], list[Path]]:
        """The current version of a job and every path that holds a version of it."""
        for _ in range(5):
            found: list[tuple[_Stored[T], Path]] = []
            for status in STATUSES:
                path = self.path_for(job_id, status)
                stored = self._read(path)
                if stored is not None:
                    found.append((stored, path))
            if found:
                best = max(found, key=lambda pair: pair[0].document["revision"])
                return best[0], [path for _, path in found]
            if not self.leaf_dir(job_id).is_dir():
                break
            # A concurrent status change may have moved the file between
            # our probes (old name gone, new name probed earlier): look again.
            if not self._any_name(job_id):
                break
        raise JobNotFound(job_id)

    def _resolve_locked_batch(self, job_ids: list[str]) -> dict[str, list[Path]]:
        """Every name of each job, from one listing per leaf, for jobs whose locks are held.

        With the locks held no name of these jobs can change, so a listing is
        as good as probing each status (five opens per job): a batch of jobs
        created together shares one leaf, hence one listing.
        """
        wanted = set(job_ids)
        names: dict[str, list[Path]] = {job_id: [] for job_id in job_ids}
        for leaf in dict.fromkeys(self.leaf_dir(job_id) for job_id in job_ids):
            for name in listdir(leaf):
                entry = parse_name(name)
                if entry is not None and entry.id in wanted:
                    names[entry.id].append(leaf / name)
        return names

    def _resolve_among(self, job_id: str, paths: list[Path]) -> tuple[_Stored[T], list[Path]]:
        """Like :meth:`_resolve`, reading only ``paths`` (the job's names, already listed)."""
        found = [(stored, path) for path in paths if (stored := self._read(path)) is not None]
        if not found:
            raise JobNotFound(job_id)
        best = max(found, key=lambda pair: pair[0].document["revision"])
        return best[0], [path for _, path in found]

    def _any_name(self, job_id: str) -> bool:
        return any(self.path_for(job_id, status).exists() for status in STATUSES)

    def _read(self, path: Path, *, again: bool = True) -> _Stored[T] | None:
        """The job in ``path``; None when the name does not exist or cannot be read.

        Whatever sits under a job's name and cannot be read as one (bad
        JSON, JSON nested too deep to parse, a document the codec refuses, a
        directory, a file the process may not read, a disk error) is
        quarantined, or skipped and logged when even that fails, so that
        one damaged file costs one job, never the page or pass reading it.

        Before a file is called damaged it is read once more: the name may
        have been retired while it was being read and its file reused for
        another document (:mod:`filestore.spares`), which a second look
        tells (the name is gone, or holds a whole document again).
        """
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            # EISDIR, EACCES, EIO...: not a readable job file.
            self.quarantine.move(path, exc)
            return None
        try:
            document = json.loads(data)
            entry = parse_name(path.name)
            if (
                not isinstance(document, dict)
                or entry is None
                or document.get("id") != entry.id
                or document.get("status") != entry.status
                or not isinstance(document.get("revision"), int)
                or isinstance(document.get("revision"), bool)
            ):
                raise CorruptJobFile("not a job document matching its file name")
            item = self.codec.load(document)
        except (ValueError, TypeError, KeyError, RecursionError, CorruptJobFile) as exc:
            if again:
                return self._read(path, again=False)
            self.quarantine.move(path, exc)
            return None
        return _Stored(document, item)

    def entries(
        self, *, statuses: Iterable[str] | None = None, before: str | None = None
    ) -> Iterator[Entry]:
        """Jobs newest first, from names alone, optionally filtered and after a cursor.

        ``before`` is an id: only strictly older jobs are yielded. When a
        crash left two names for one job, the newer state (higher revision)
        decides its status.
        """
        wanted = set(statuses) if statuses else None
        upto = before if before else None
        for top in listdir_desc(self.jobs_dir, upto[0:4] if upto else None):
            top_dir = self.jobs_dir / top
            for mid in listdir_desc(top_dir, upto[4:6] if upto and top == upto[0:4] else None):
                mid_dir = top_dir / mid
                in_cursor_mid = upto is not None and top + mid == upto[0:6]
                for leaf in listdir_desc(mid_dir, upto[6:8] if in_cursor_mid else None):
                    for entry in self._leaf_entries(mid_dir / leaf):
                        if upto is not None and entry.id >= upto:
                            continue
                        if wanted is None or entry.status in wanted:
                            yield entry

    def _leaf_entries(self, leaf: Path) -> list[Entry]:
        names = listdir(leaf)
        by_id: dict[str, list[str]] = {}
        for name in names:
            entry = parse_name(name)
            if entry is not None:
                by_id.setdefault(entry.id, []).append(entry.status)
        entries = []
        for job_id in sorted(by_id, reverse=True):
            statuses = by_id[job_id]
            if len(statuses) == 1:
                entries.append(Entry(job_id, statuses[0]))
            else:
                try:
                    current, _ = self._resolve(job_id)
                    entries.append(Entry(job_id, current.document["status"]))
                except JobNotFound:
                    continue
        return entries

    def list(
        self, *, statuses: Iterable[str] | None = None, before: str | None = None, limit: int
    ) -> tuple[list[T], bool]:
        """One page of jobs newest first, and whether more follow."""
        page: list[Entry] = []
        more = False
        for entry in self.entries(statuses=statuses, before=before):
            if len(page) == limit:
                more = True
                break
            page.append(entry)
        items: list[T] = []
        for entry in page:
            stored = self._read(self.path_for(entry.id, entry.status))
            if stored is not None:
                items.append(stored.item)
                continue
            # Its status changed since the names were listed, it was deleted,
            # or its file was unreadable: take its current state if there is one.
            try:
                items.append(self.get(entry.id))
            except JobNotFound:
                continue
        return items, more

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for entry in self.entries():
            counts[entry.status] += 1
        return counts

    # -- maintenance --------------------------------------------------------

    def recover(self, *, now: float | None = None) -> dict[str, int]:
        """Clean up what crashed writers left: temp files and stale duplicate names."""
        return recover_store(self, now=now)

    def remove_stale_names(self, job_id: str) -> int:
        """Remove every name of ``job_id`` but its current one; return how many went."""
        with self._locks.one(job_id):
            current, paths = self._resolve(job_id)
            keep = self.path_for(job_id, current.document["status"])
            return sum(1 for path in paths if path != keep and atomic.unlink_durable(path))

    def quarantined(self) -> int:
        """How many unreadable files have been moved aside."""
        return self.quarantine.count()
