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
The statuses are the caller's (``jobs.store`` passes the job statuses): the
repository checks that a document carries one of them and names its file
by it, and knows nothing else of what they mean.

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
(:mod:`filestore.group_commit`), and a batch of changes to several jobs
(:meth:`JobRepository.apply_many`) shares two flushes whatever its size.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from filestore import atomic
from filestore.codec import Codec, Document, DocumentCodec
from filestore.directories import listdir, listdir_desc
from filestore.group_commit import GroupCommitter, directories_of, sync
from filestore.ids import ID_LENGTH, is_valid_id
from filestore.job_names import Entry, check_statuses, file_name, leaves, parse_name
from filestore.quarantine import Quarantine
from filestore.stripe_locks import StripeLocks

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["STALE_TEMP_SECONDS", "Codec", "Document", "Entry", "JobRepository"]

# Temp files older than this whose writer cannot be shown alive are leftovers.
STALE_TEMP_SECONDS = 600
# A batch change lists a leaf holding at least this many of its jobs, and
# looks the others up by name (see JobRepository._names_of_locked).
LIST_LEAF_AT = 16


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


@dataclass(frozen=True)
class _Planned:
    """A job's new state in a batch, written to a temp file and not yet in place."""

    index: int  # its place in the batch's results
    tmp: str
    target: Path
    paths: list[Path]  # every name the job had
    item: Any  # the job as written


class JobRepository(Generic[T]):
    """The jobs under ``root``, each stored with one of ``statuses`` (see the module docstring)."""

    def __init__(
        self, root: Path, codec: Codec[T] | None = None, *, statuses: Iterable[str]
    ) -> None:
        self.root = Path(root)
        self.codec: Codec[Any] = codec or DocumentCodec()
        self.statuses = check_statuses(statuses)
        self.jobs_dir = self.root / "jobs"
        self.tmp_dir = self.root / "tmp"
        self._tmp_name = os.fspath(self.tmp_dir)  # for atomic.write_temp_name
        self.quarantine_dir = self.root / "quarantine"
        self.locks_dir = self.root / "locks"
        self._ready = False
        self._locks = StripeLocks(self.locks_dir)
        self.quarantine = Quarantine(self.quarantine_dir)
        # Durable writes of concurrent threads share their flushes.
        self._committer = GroupCommitter()
        self._leaves: dict[str, Path] = {}
        # Leaves this process made or wrote into: not probed again before each write.
        self._made: set[Path] = set()

    # -- layout -------------------------------------------------------------

    def setup(self) -> None:
        if self._ready:
            return
        for directory in (self.jobs_dir, self.tmp_dir, self.quarantine_dir, self.locks_dir):
            atomic.ensure_dir(directory)
        self._ready = True

    def leaf_dir(self, job_id: str) -> Path:
        prefix = job_id[0:8]
        leaf = self._leaves.get(prefix)
        if leaf is None:
            # A leaf is a second of ids: the jobs of a batch, or of a page,
            # mostly share one. Made once, not with three joins per call.
            if len(self._leaves) >= 1024:
                self._leaves.clear()
            leaf = self._leaves[prefix] = self.jobs_dir / prefix[0:4] / prefix[4:6] / prefix[6:8]
        return leaf

    def path_for(self, job_id: str, status: str) -> Path:
        return self.leaf_dir(job_id) / file_name(job_id, status)

    def _ensure_leaf(self, leaf: Path) -> None:
        """Make ``leaf`` unless this process has already written into it.

        Writes into a known leaf skip the probe (a stat per write). The
        repository never removes a leaf; a write that finds its leaf
        removed from outside calls :meth:`_lost_leaf` and is made again.
        """
        if leaf not in self._made:
            atomic.ensure_dir(leaf)
            if len(self._made) >= 1024:
                self._made.clear()
            self._made.add(leaf)

    def _lost_leaf(self, leaf: Path) -> None:
        self._made.discard(leaf)

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
        if not is_valid_id(job_id) or status not in self.statuses:
            raise ValueError(f"bad id or status: {job_id!r} {status!r}")
        document = {**document, "revision": 1}
        path = self.path_for(job_id, status)
        if not may_exist:
            if not self._write(path, document, exclusive=True):
                raise JobExists(job_id)
            return self.codec.revised(item, 1)
        with self._locks.one(job_id):
            if self._any_name(job_id) or not self._write(path, document, exclusive=True):
                raise JobExists(job_id)
        return self.codec.revised(item, 1)

    def create_many(self, items: Sequence[T]) -> list[T | None]:
        """Store new jobs with fresh ids durably, all of them sharing two flushes.

        What :meth:`create` does for one job, for a batch (the creates the
        web server answers together): each job as stored, or ``None`` where
        its id was taken. A write that fails raises, and then none of the
        jobs may be counted as stored, though some may be (a create whose
        answer was an error may still have its job: the recovery pass
        queues it, as after a crash).
        """
        self.setup()
        entries: list[tuple[Path, Document]] = []
        for item in items:
            document = self.codec.dump(item)
            job_id, status = document["id"], document["status"]
            if not is_valid_id(job_id) or status not in self.statuses:
                raise ValueError(f"bad id or status: {job_id!r} {status!r}")
            document = {**document, "revision": 1}
            entries.append((self.path_for(job_id, status), document))
        written = self._write_many(entries, exclusive=True)
        return [
            self.codec.revised(item, 1) if ok else None
            for item, ok in zip(items, written, strict=True)
        ]

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
            new = self._next_version(job_id, current, changed)
            target = self.path_for(job_id, new["status"])
            self._write(target, new, durable=durable)
            self._retire_all_but(target, paths)
            return Applied(self.codec.revised(changed, new["revision"]), True)

    def apply_many(
        self,
        changes: Sequence[tuple[str, Callable[[T], T | None]]],
        *,
        durable: bool = True,
        flush_first: Iterable[str | os.PathLike[str]] = (),
    ) -> list[Applied[T] | None]:
        """Apply one change to each of several jobs; their new states become durable together.

        The batch form of :meth:`apply` (one entry per job, in order; None
        for a job that does not exist), holding the locks of all the jobs at
        once. The new documents are written to temp files, flushed together,
        renamed into place, and their directories flushed together: two
        flushes for the batch instead of two per job, with the same
        crash-safety as :meth:`update` (no name ever points at unflushed
        data; two names of one job resolve by revision). Job ids must be
        distinct.

        ``flush_first``: paths (on the store's file system) whose changes the
        new states depend on, flushed with the new documents (one flush for
        all), before any of them is in place: a photo's claim before the job
        that shows it. They are flushed even when no job changes.
        """
        self.setup()
        ids = [job_id for job_id, _ in changes]
        if len(set(ids)) != len(ids):
            raise ValueError("apply_many needs distinct job ids")
        results: list[Applied[T] | None] = []
        planned: list[_Planned] = []
        with self._locks.many(ids):
            listed = self._names_of_locked(ids)
            placed = 0  # how many of ``planned`` were renamed into place
            try:
                for job_id, change in changes:
                    versions = self._versions(listed[job_id])
                    if not versions:
                        results.append(None)
                        continue
                    current, paths = self._newest(versions)
                    changed = change(current.item)
                    if changed is None:
                        results.append(Applied(current.item, False))
                        continue
                    new = self._next_version(job_id, current, changed)
                    tmp = atomic.write_temp_name(self._tmp_name, atomic.dumps(new), durable=False)
                    target = self.path_for(job_id, new["status"])
                    item = self.codec.revised(changed, new["revision"])
                    planned.append(_Planned(len(results), tmp, target, paths, item))
                    results.append(None)  # filled in once written
                first = [*flush_first, *(plan.tmp for plan in planned if durable)]
                if first:
                    sync(first)
                for plan in planned:
                    self._rename_into_place(plan.tmp, plan.target)
                    placed += 1
                if durable:
                    sync(directories_of(plan.target for plan in planned))
            finally:
                # Temp files not renamed into place (a write or a flush failed) are garbage.
                for plan in planned[placed:]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(plan.tmp)
            for plan in planned:
                self._retire_all_but(plan.target, plan.paths)
                results[plan.index] = Applied(plan.item, True)
        return results

    def _rename_into_place(self, tmp: str, target: Path) -> None:
        for _ in range(3):
            self._ensure_leaf(target.parent)
            try:
                atomic.hooks.step("rename", target)
                os.replace(tmp, target)
                return
            except FileNotFoundError:
                if not os.path.lexists(tmp):
                    raise
                self._lost_leaf(target.parent)  # removed as empty meanwhile: make it again
        raise OSError(f"could not write {target}")

    def _next_version(self, job_id: str, current: _Stored[T], changed: T) -> Document:
        """The document of ``changed``, the next revision of ``current``."""
        new = dict(self.codec.dump(changed))
        if new.get("id") != job_id or new.get("status") not in self.statuses:
            raise ValueError("a change must keep the id and set a known status")
        new["revision"] = current.document["revision"] + 1
        return new

    def _retire_all_but(self, target: Path, paths: list[Path]) -> None:
        """Put away a job's previous names, once its new one (``target``) is in place."""
        for path in paths:
            if path != target:
                atomic.retire(path, tmp_dir=self.tmp_dir)

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
        """Write ``document`` to ``path``; with ``exclusive``, only if the name is free."""
        return self._write_many([(path, document)], exclusive=exclusive, durable=durable)[0]

    def _write_many(
        self,
        entries: Sequence[tuple[Path, Document]],
        *,
        exclusive: bool = False,
        durable: bool = True,
        attempts: int = 3,
    ) -> list[bool]:
        """Write each document to its path; with ``exclusive``, only where the name is free.

        The Maildir sequence of :mod:`filestore.atomic` for all of them at
        once: every temp file is written, their data is flushed, each is
        linked (or renamed) into place, and the directories are flushed.
        The flushes go through the group committer, so threads writing at
        the same time share them as well. Returns, for each entry, whether
        it was written (``False``: the name was taken).
        """
        written: list[bool | None] = [None] * len(entries)
        tmps: list[str] = []
        placed: list[bool] = []
        try:
            for path, document in entries:
                self._ensure_leaf(path.parent)
                tmps.append(
                    atomic.write_temp_name(self._tmp_name, atomic.dumps(document), durable=False)
                )
                placed.append(False)
            if durable:
                self._committer.commit(tmps)
            for index, ((path, _), tmp) in enumerate(zip(entries, tmps, strict=True)):
                try:
                    if exclusive:
                        atomic.hooks.step("link", path)
                        os.link(tmp, path)
                    else:
                        atomic.hooks.step("rename", path)
                        os.replace(tmp, path)
                        placed[index] = True
                except FileExistsError:
                    written[index] = False
                except FileNotFoundError:
                    # The leaf was removed as empty since it was made: made
                    # again and written below.
                    self._lost_leaf(path.parent)
                    continue
                else:
                    written[index] = True
        finally:
            # A link leaves the temp name behind; a rename does not.
            for tmp, moved in zip(tmps, placed, strict=False):
                if not moved:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
        if durable:
            self._committer.commit(
                directories_of(path for (path, _), ok in zip(entries, written, strict=True) if ok)
            )
        again = [index for index, ok in enumerate(written) if ok is None]
        if again:
            if attempts <= 1:
                raise OSError(f"could not write {entries[again[0]][0]}")
            retried = self._write_many(
                [entries[index] for index in again],
                exclusive=exclusive,
                durable=durable,
                attempts=attempts - 1,
            )
            for index, ok in zip(again, retried, strict=True):
                written[index] = ok
        return [bool(ok) for ok in written]

    # -- reads --------------------------------------------------------------

    def get(self, job_id: str) -> T:
        if not is_valid_id(job_id):
            raise JobNotFound(str(job_id)[:40])
        current, _ = self._resolve(job_id)
        return current.item

    def _resolve(self, job_id: str) -> tuple[_Stored[T], list[Path]]:
        """The current version of a job and every path that holds a version of it."""
        names = self._candidate_names(job_id)
        for _ in range(5):
            versions = self._versions(names)
            if versions:
                return self._newest(versions)
            if not self.leaf_dir(job_id).is_dir():
                break
            # A concurrent status change may have moved the file between
            # our probes (old name gone, new name probed earlier): look again.
            if not self._any_name(job_id):
                break
        raise JobNotFound(job_id)

    def _names_of_locked(self, job_ids: list[str]) -> dict[str, list[Path | str]]:
        """The names to read for each job, for jobs whose locks are held.

        With the locks held no name of these jobs can change, so either way
        of finding them is exact: trying each status's name (an open each;
        the names that do not exist are cheap to miss), or listing the leaf.
        A listing costs as many names as the leaf holds, under a stream a
        second's creates (a thousand at 1,000 jobs/s), so a leaf is listed
        only when it holds at least :data:`LIST_LEAF_AT` of the batch's jobs
        (jobs created together with one delay). Jobs due together were
        mostly created at different times, their delays being different:
        one or two per leaf, where listing each leaf doubled a run's CPU.
        """
        by_leaf: dict[Path, list[str]] = {}
        for job_id in job_ids:
            by_leaf.setdefault(self.leaf_dir(job_id), []).append(job_id)
        names: dict[str, list[Path | str]] = {}
        for leaf, leaf_ids in by_leaf.items():
            if len(leaf_ids) < LIST_LEAF_AT:
                for job_id in leaf_ids:
                    names[job_id] = self._candidate_names(job_id)
                continue
            listed: dict[str, list[Path | str]] = {job_id: [] for job_id in leaf_ids}
            for name in listdir(leaf):
                # Only the names that start with a wanted id are worth parsing.
                if name[:ID_LENGTH] not in listed:
                    continue
                entry = parse_name(name, self.statuses)
                if entry is not None:
                    listed[entry.id].append(leaf / name)
            names.update(listed)
        return names

    def _versions(self, paths: Iterable[Path | str]) -> list[tuple[_Stored[T], Path]]:
        """The readable versions of a job among ``paths``, each with its path (a Path)."""
        versions = []
        for path in paths:
            stored = self._read(path)
            if stored is not None:
                versions.append((stored, path if isinstance(path, Path) else Path(path)))
        return versions

    def _candidate_names(self, job_id: str) -> list[str]:
        """Every name ``job_id`` may have, one per status, as text.

        Most of them do not exist: a Path is made only for those found
        (:meth:`_versions`).
        """
        leaf = os.fspath(self.leaf_dir(job_id))
        return [f"{leaf}/{file_name(job_id, status)}" for status in self.statuses]

    @staticmethod
    def _newest(versions: list[tuple[_Stored[T], Path]]) -> tuple[_Stored[T], list[Path]]:
        """The version with the highest revision, and every path that holds one."""
        best = max(versions, key=lambda pair: pair[0].document["revision"])
        return best[0], [path for _, path in versions]

    def _any_name(self, job_id: str) -> bool:
        return any(self.path_for(job_id, status).exists() for status in self.statuses)

    def _read(self, path: Path | str, *, again: bool = True) -> _Stored[T] | None:
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
            data = atomic.read_bytes(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            # EISDIR, EACCES, EIO...: not a readable job file.
            self.quarantine.move(Path(path), exc)
            return None
        try:
            document = atomic.loads(data)
            entry = parse_name(os.path.basename(path), self.statuses)
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
            self.quarantine.move(Path(path), exc)
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
            entry = parse_name(name, self.statuses)
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
        counts = dict.fromkeys(self.statuses, 0)
        for entry in self.entries():
            counts[entry.status] += 1
        return counts

    # -- maintenance --------------------------------------------------------

    def recover(self, *, now: float | None = None) -> dict[str, int]:
        """Clean up what crashed writers left: temp files and stale duplicate names.

        Removes the temp files of dead writers, and the older name of jobs
        that have two: a crash between writing a job's new name and removing
        its old one leaves two names; readers already take the higher
        revision, and this removes the other under the job's lock.
        """
        self.setup()
        now = time.time() if now is None else now
        report = {"temp_files_removed": 0, "stale_names_removed": 0}
        for tmp in self.tmp_dir.iterdir():
            if atomic.is_leftover_temp(tmp, now=now, stale_seconds=STALE_TEMP_SECONDS):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    report["temp_files_removed"] += 1
        for leaf in leaves(self.jobs_dir):
            names = collections.Counter(
                entry.id for name in listdir(leaf) if (entry := parse_name(name, self.statuses))
            )
            for job_id, count in names.items():
                if count > 1:
                    try:
                        report["stale_names_removed"] += self.remove_stale_names(job_id)
                    except JobNotFound:
                        continue
        return report

    def remove_stale_names(self, job_id: str) -> int:
        """Remove every name of ``job_id`` but its current one; return how many went."""
        with self._locks.one(job_id):
            current, paths = self._resolve(job_id)
            keep = self.path_for(job_id, current.document["status"])
            return sum(1 for path in paths if path != keep and atomic.unlink_durable(path))

    def quarantined(self) -> int:
        """How many unreadable files have been moved aside."""
        return self.quarantine.count()
