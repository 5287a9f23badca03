"""Atomic, durable file writes (Maildir's rule).

A write goes to a unique temp file in ``tmp_dir`` (same file system as the
target), is fsynced, renamed into place, and the target directory is
fsynced. At every instant the target name holds either the complete old
content or the complete new content, never a mix, and once the function
returns the new content survives a power cut.

Files and directories are created private to the owner (``0600`` and
``0700``) whatever the process umask: the data directory holds session
data and keys besides the jobs.

Every step goes through :data:`hooks` so tests can make any single
``write``/``fsync``/``rename``/``link``/``unlink`` fail and check what a
crash at that instant leaves on disk.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from filestore import process_names
from filestore.spares import spares_of
from storage.owners import PID_SCOPE

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


class _Hooks:
    """Indirection over the syscalls of a write, for fault-injection tests."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.before: Callable[[str, str], None] = _no_hook

    @property
    def active(self) -> bool:
        """Whether a test is watching the steps (a step's name may then cost a probe)."""
        return self.before is not _no_hook

    def step(self, name: str, path: str | os.PathLike[str]) -> None:
        self.before(name, os.fspath(path))


def _no_hook(step: str, path: str) -> None:
    pass


hooks = _Hooks()


def temp_writer_pid(name: str) -> int | None:
    """The pid that wrote the temp file ``name``, if it ran in our :data:`PID_SCOPE`."""
    parts = name.split(".")
    if len(parts) == 4 and parts[1] == PID_SCOPE and parts[0].isdigit():
        return int(parts[0])
    return None


def is_leftover_temp(path: Path, *, now: float, stale_seconds: float) -> bool:
    """Whether the temp file ``path`` was left by a writer that is gone.

    Its writer's pid tells, when it ran in our scope; a file written in
    another container (or named by an older version) is left over only
    once older than ``stale_seconds``.
    """
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return False
    pid = temp_writer_pid(path.name)
    if pid is not None and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True  # its writer is gone
        except PermissionError:
            pass
    return age > stale_seconds


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the directory entries of ``path`` durable."""
    hooks.step("fsync_dir", path)
    fd = os.open(path, _DIR_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` (and parents) durably: each new entry's parent is fsynced."""
    if path.is_dir():
        return
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            # A umask only takes bits away: 0o700 stays private under any.
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # another process made it first; its parent is fsynced by it
        fsync_dir(directory.parent)


def write_temp(
    tmp_dir: Path, data: bytes, *, durable: bool = True, mode: int = PRIVATE_FILE_MODE
) -> Path:
    """Write ``data`` to a new file in ``tmp_dir`` (fsynced if ``durable``); return its path.

    The file is a spare one of ``tmp_dir`` when there is one to reuse
    (:mod:`filestore.spares`), overwritten and cut to the new length, else
    a new one.
    """
    return Path(write_temp_name(tmp_dir, data, durable=durable, mode=mode))


def _temp_name(directory: str) -> str:
    """A new temp file name in ``directory``: its writer's pid (see :func:`temp_writer_pid`)."""
    return f"{directory}/{process_names.pid()}.{PID_SCOPE}.{process_names.token()}.tmp"


def write_temp_name(
    tmp_dir: str | os.PathLike[str],
    data: bytes,
    *,
    durable: bool = True,
    mode: int = PRIVATE_FILE_MODE,
) -> str:
    """:func:`write_temp`, with the path as text: for the writes of every create and
    every job, where joining ``Path`` objects cost a quarter of a queue message's
    Python (three joins of 5 us each against 34 us in all)."""
    directory = os.fspath(tmp_dir)
    tmp = _temp_name(directory)
    reused = spares_of(directory).take(tmp)
    if reused:
        fd = os.open(tmp, os.O_WRONLY)
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        if reused:
            os.fchmod(fd, mode)  # whatever the file was before, it is ours now
        hooks.step("write", tmp)
        written = os.write(fd, data)
        if written < len(data):
            view = memoryview(data)[written:]
            while view:
                written = os.write(fd, view)
                view = view[written:]
        if reused:
            os.ftruncate(fd, len(data))
        if durable:
            hooks.step("fsync", tmp)
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    return tmp


def write_atomic(path: Path, data: bytes, *, tmp_dir: Path, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (and durably, unless told not to)."""
    tmp = write_temp(tmp_dir, data, durable=durable)
    try:
        hooks.step("rename", path)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def create_exclusive(
    path: Path, data: bytes, *, tmp_dir: Path, mode: int = PRIVATE_FILE_MODE
) -> bool:
    """Create ``path`` with ``data`` unless it exists; return whether we created it.

    ``link()`` fails with EEXIST when the name is taken, so of several
    processes racing for one name exactly one wins, and the winner's file
    is complete from the first instant it is visible.
    """
    tmp = write_temp(tmp_dir, data, mode=mode)
    try:
        hooks.step("link", path)
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        _unlink_quietly(tmp)
    fsync_dir(path.parent)
    return True


def unlink_durable(path: Path, *, durable: bool = True) -> bool:
    """Remove ``path`` and fsync its directory; return False if it was already gone."""
    try:
        hooks.step("unlink", path)
        os.unlink(path)
    except FileNotFoundError:
        return False
    if durable:
        fsync_dir(path.parent)
    return True


def retire(path: str | os.PathLike[str], *, tmp_dir: str | os.PathLike[str]) -> bool:
    """Remove the name ``path``, keeping its file as a spare of ``tmp_dir`` to write again.

    Like ``unlink_durable(path, durable=False)`` (False if it was already
    gone), for files written by :func:`write_temp` into ``tmp_dir``; see
    :mod:`filestore.spares` for why and why it is safe.
    """
    hooks.step("unlink", path)
    return spares_of(tmp_dir).retire(path)


# A job document, a queue payload or a pool entry is read in one call of this size.
READ_CHUNK = 1 << 16


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole content of the file ``path``, like ``Path.read_bytes``, in fewer system calls.

    ``open()`` adds a stat, a terminal check and a seek to every read, and
    the store reads a few small files per job: here a read of a file
    smaller than :data:`READ_CHUNK` is ``open``, one ``read`` and ``close``.
    A read of a regular file returns less than it was asked for only at the
    end of the file, so a short read needs no second one to find the end.
    Errors are those of ``open()`` (``FileNotFoundError``;
    ``IsADirectoryError`` for a directory). A named pipe planted where a
    file should be reads as empty instead of blocking until a writer comes.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = os.read(fd, READ_CHUNK)
        if len(data) < READ_CHUNK:
            return data
        chunks = [data]
        while chunk := os.read(fd, READ_CHUNK):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def dumps(document: Any) -> bytes:
    """The one JSON encoding used for every file the store writes: compact UTF-8.

    orjson writes what ``json.dumps(document, separators=(",", ":"),
    ensure_ascii=False)`` does for the store's documents, several times
    faster (a job is encoded at each of its writes).
    """
    return orjson.dumps(document)


def loads(data: bytes | str) -> Any:
    """A document read from a file; ``ValueError`` (``json.JSONDecodeError``) if it is not JSON."""
    return orjson.loads(data)


def _unlink_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
