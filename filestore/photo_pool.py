"""Storage of the photo pool: unused photos, and the state of the rate-limit gate.

What to keep, when to fetch and what a rate limit means is decided in
``jobs.photos``; this module only stores. :class:`PhotoPoolStore` is what
the job domain needs of any backend; :class:`FilePhotoPoolStore` keeps it
in files under ``<JOBS_DATA_DIR>/photos/``::

    pool/<fetched_ms>-<batch>-<index>.json   one unused photo per file
    fetch.lock                               flock held while fetching a batch
    rate_limit.json                          the gate's state (a JSON object)

- ``<fetched_ms>`` is the fetch time in epoch milliseconds, zero-padded to
  13 digits, so names sort oldest first and the age of an entry is read
  from its name (no file read to expire it). ``<batch>`` is 8 random hex
  digits, ``<index>`` the 3-digit position in the batch. The file holds
  ``{"fetched_at": <epoch seconds>, "batch": "<batch>", "photo": {...}}``.
- An entry is written to ``tmp_dir`` and renamed into ``pool/`` (see
  ``filestore.atomic``), so a visible entry is always complete.
- ``rate_limit.json`` is replaced atomically, and only written by the
  process holding ``fetch.lock``; it is read without the lock.

Why each photo goes to exactly one caller: a photo is claimed by reading
its entry and then retiring its name (renaming the file into the spare
pool, :mod:`filestore.spares`). Of several processes that read the same
entry, exactly one rename succeeds (the others get ``ENOENT``), and
only that one returns the photo; the rest move on to the next entry. Names
are never reused, so a claim cannot hit a newer entry of the same name. The
claim is made durable before the photo is returned, so after a crash a
handed-out photo cannot come back.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from filestore.atomic import dumps, ensure_dir, fsync_dir, retire, write_atomic

log = logging.getLogger(__name__)


class PhotoPoolStore(Protocol):
    """What the photo pool needs of its storage, shared by every worker process.

    Photos are opaque JSON objects here. ``now`` is passed in, so the pool's
    one clock decides what has expired.
    """

    def take(self, now: float) -> dict[str, Any] | None:
        """Claim one photo no other caller gets, oldest first, or ``None`` if none is fresh.

        Photos older than the store's time to live are discarded on the way.
        """
        ...

    def take_many(self, count: int, now: float) -> list[dict[str, Any]]:
        """Claim up to ``count`` photos at once (as :meth:`take`, in one pass over the pool)."""
        ...

    def add(self, photos: list[dict[str, Any]], now: float) -> None:
        """Keep a batch of photos fetched at ``now``, durably as a whole."""
        ...

    def size(self, now: float) -> int:
        """How many fresh photos wait."""
        ...

    def clear(self) -> int:
        """Discard every photo; return how many were removed."""
        ...

    def fetch_lock(self) -> AbstractContextManager[None]:
        """Held by the one caller, of all processes, that may fetch and write the gate."""
        ...

    def read_gate(self) -> dict[str, Any]:
        """The gate's state as last written (``{}`` if never written or unreadable)."""
        ...

    def write_gate(self, state: dict[str, Any]) -> None:
        """Replace the gate's state at once (call with :meth:`fetch_lock` held)."""
        ...


_ENTRY_NAME = re.compile(r"^(\d{13,})-([0-9a-f]{8})-(\d{3})\.json$")


class FilePhotoPoolStore:
    """:class:`PhotoPoolStore` on files (see the module's docstring for the layout)."""

    def __init__(self, root: Path, tmp_dir: Path, *, ttl_seconds: float) -> None:
        self.root = Path(root)
        self.tmp_dir = Path(tmp_dir)
        self.entries_dir = self.root / "pool"
        self.lock_path = self.root / "fetch.lock"
        self.state_path = self.root / "rate_limit.json"
        self.ttl_seconds = ttl_seconds
        ensure_dir(self.entries_dir)
        ensure_dir(self.tmp_dir)

    # --- Photos ---

    def take(self, now: float) -> dict[str, Any] | None:
        taken = self.take_many(1, now)
        return taken[0] if taken else None

    def take_many(self, count: int, now: float) -> list[dict[str, Any]]:
        taken: list[dict[str, Any]] = []
        claimed = False
        for name, fetched_at in self._entries():
            if len(taken) >= count:
                break
            path = self.entries_dir / name
            if self._expired(fetched_at, now):
                _unlink_quietly(path)
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # another process claimed it
            # Retiring the name is the claim: exactly one of the readers
            # succeeds. The directory is flushed once for all the claims below.
            if not retire(path, tmp_dir=self.tmp_dir):
                continue
            claimed = True
            try:
                taken.append(json.loads(data)["photo"])
            except (ValueError, KeyError, TypeError):
                log.error("Discarded unreadable photo pool entry %s", path)
        if claimed:
            # Durable before any photo is handed out: a power cut must not
            # bring back a photo that a job already shows.
            fsync_dir(self.entries_dir)
        return taken

    def add(self, photos: list[dict[str, Any]], now: float) -> None:
        if not photos:
            return
        batch = secrets.token_hex(4)
        stamp = f"{round(now * 1000):013d}-{batch}"
        # One fsync for the batch instead of two per photo: an entry a power
        # cut leaves empty is discarded as unreadable, and a lost one is
        # only a photo fetched for nothing.
        for index, photo in enumerate(photos):
            document = {"fetched_at": now, "batch": batch, "photo": photo}
            path = self.entries_dir / f"{stamp}-{index:03d}.json"
            write_atomic(path, dumps(document), tmp_dir=self.tmp_dir, durable=False)
        fsync_dir(self.entries_dir)

    def size(self, now: float) -> int:
        return sum(1 for _, fetched_at in self._entries() if not self._expired(fetched_at, now))

    def clear(self) -> int:
        return sum(1 for name, _ in self._entries() if _unlink_quietly(self.entries_dir / name))

    def _entries(self) -> list[tuple[str, float]]:
        """Names of pool entries, oldest first, with their fetch times."""
        try:
            names = os.listdir(self.entries_dir)
        except FileNotFoundError:
            return []
        entries = []
        for name in sorted(names):
            match = _ENTRY_NAME.match(name)
            if match:
                entries.append((name, int(match.group(1)) / 1000))
        return entries

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
        write_atomic(self.state_path, dumps(state), tmp_dir=self.tmp_dir)


def _unlink_quietly(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
