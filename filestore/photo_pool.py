"""A pool of fetched-but-unused photos shared by every worker process.

One call to the photo source returns up to 30 random photos while a job
needs one; with a demo key's 50 calls an hour, one call per job would cap
the system at 50 jobs an hour. The pool keeps the rest of each batch on
disk, briefly, and hands each photo to exactly one job. It also holds the
rate-limit gate: once the source says its budget is spent, no process calls
it again until a probe time, and then only one process does.

This module also defines the contract of a ``fetch`` callable (what it
returns and what it may raise). The photo sources in ``jobs.photos``
implement it and re-export the errors under the same names; the classes
live here because ``filestore`` never imports ``jobs``.

On-disk layout under ``root`` (``<JOBS_DATA_DIR>/photos/``)::

    pool/<fetched_ms>-<batch>-<index>.json   one unused photo per file
    fetch.lock                               flock held while fetching a batch
    rate_limit.json                          the gate and the last known budget

- ``<fetched_ms>`` is the fetch time in epoch milliseconds, zero-padded to
  13 digits, so names sort oldest first and the age of an entry is read
  from its name (no file read to expire it). ``<batch>`` is 8 random hex
  digits, ``<index>`` the 3-digit position in the batch. The file holds
  ``{"fetched_at": <epoch seconds>, "batch": "<batch>", "photo": {...}}``
  where ``photo`` is the source's result dict.
- An entry is written to ``tmp_dir`` and renamed into ``pool/`` (see
  ``filestore.atomic``), so a visible entry is always complete.
- ``rate_limit.json`` is replaced atomically and is only written by the
  process holding ``fetch.lock``; it is read without the lock.

Why each photo goes to exactly one job: a photo is claimed by reading its
entry and then unlinking it. Of several processes that read the same entry,
exactly one ``unlink()`` succeeds (the others get ``ENOENT``), and only that
one returns the photo; the rest move on to the next entry. Names are never
reused, so a claim cannot hit a newer entry of the same name. The unlink is
made durable before the photo is returned, so after a crash a handed-out
photo cannot come back. Within a batch, photos are deduplicated by id before
they are written, so one batch never yields the same photo twice. A process
that finds the pool empty takes ``fetch.lock`` and looks again before it
fetches, so only one process fetches at a time and a batch is fetched only
when the previous one is used up.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filestore.atomic import dumps, ensure_dir, fsync_dir, unlink_durable, write_atomic

log = logging.getLogger(__name__)


# --- The contract of a fetch callable --------------------------------------


class PhotoSourceError(Exception):
    """A photo could not be fetched.

    ``code`` is a stable identifier (``unsplash_unauthorized``, ...);
    ``message`` is written for the operator or user who reads it.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps code, message and retry_after through pickling (worker processes).
        return (type(self), (self.code, self.message), self.__dict__.copy())

    def as_error(self) -> dict[str, str]:
        """The ``error`` object of a job: ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": self.message}


class TransientPhotoError(PhotoSourceError):
    """Worth retrying later; ``retry_after`` (seconds) is a hint when known."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class RateLimited(TransientPhotoError):
    """The source's request budget is spent; retry after ``retry_after`` seconds."""

    def __init__(
        self,
        code: str = "rate_limited",
        message: str = "The photo service's request limit is reached; photos will be "
        "fetched again once it resets.",
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, retry_after=retry_after)


class PermanentPhotoError(PhotoSourceError):
    """Retrying cannot help until someone fixes the configuration."""


class PhotoBatch(list):
    """What a fetch returns: a list of result dicts, plus what the source said
    about its budget (``remaining`` and ``limit`` requests, ``None`` if unknown)."""

    def __init__(
        self,
        photos: Iterable[dict[str, Any]] = (),
        *,
        source: str | None = None,
        remaining: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(photos)
        self.source = source
        self.remaining = remaining
        self.limit = limit


Fetch = Callable[[int], list[dict[str, Any]]]


# --- The pool ----------------------------------------------------------------

_ENTRY_NAME = re.compile(r"^(\d{13,})-([0-9a-f]{8})-(\d{3})\.json$")

_RATE_LIMITED = "rate_limited"
_UNAVAILABLE = "unavailable"


class PhotoPool:
    """Hands out photos from a shared pool, fetching a batch when it is empty.

    ``ttl_seconds`` bounds how long an unused photo is kept (random photos
    should stay fresh). While the source is rate limited, the probe interval
    grows from ``FIRST_PROBE_SECONDS`` doubling up to ``MAX_PROBE_SECONDS``,
    each stretched by up to ``jitter`` (a fraction) so that several machines
    do not probe in step. After any other transient failure, no process
    calls the source for ``error_cooldown_seconds``: a backlog of due jobs
    then costs one failed call, not one per job.
    """

    FIRST_PROBE_SECONDS = 15.0
    MAX_PROBE_SECONDS = 300.0

    def __init__(
        self,
        root: Path,
        tmp_dir: Path,
        *,
        ttl_seconds: float = 600,
        clock: Callable[[], float] = time.time,
        jitter: float = 0.2,
        error_cooldown_seconds: float = 5.0,
    ) -> None:
        self.root = Path(root)
        self.tmp_dir = Path(tmp_dir)
        self.entries_dir = self.root / "pool"
        self.lock_path = self.root / "fetch.lock"
        self.state_path = self.root / "rate_limit.json"
        self.ttl_seconds = ttl_seconds
        self.jitter = jitter
        self.error_cooldown_seconds = error_cooldown_seconds
        self._clock = clock
        self._random = random.Random()
        ensure_dir(self.entries_dir)
        ensure_dir(self.tmp_dir)

    # --- Public API ---

    def take(self, fetch: Fetch, *, batch_size: int = 30) -> dict[str, Any]:
        """Return one photo no other caller gets, calling ``fetch`` if the pool is empty.

        Raises ``RateLimited`` (with ``retry_after``) while the gate is
        closed, and whatever ``fetch`` raises otherwise.
        """
        photo = self._claim()
        if photo is not None:
            return photo
        self._raise_if_gated(self._read_state())
        with self._fetch_lock():
            # While we waited for the lock, the holder may have refilled the
            # pool or closed the gate: look again before calling the source.
            photo = self._claim()
            if photo is not None:
                return photo
            state = self._read_state()
            self._raise_if_gated(state)
            return self._fetch_batch(fetch, batch_size, state)

    def refill(self, fetch: Fetch, *, want: int, batch_size: int = 30, max_calls: int = 10) -> int:
        """Fetch batches ahead of need until ``want`` photos wait; return the calls made.

        Called when jobs are about to fall due, so that they find their
        photos waiting instead of queueing behind one fetch after another.
        It never calls while the gate is closed, and a failure is recorded
        as for :meth:`take` and ends the refill (the jobs then fetch and
        retry as usual).
        """
        calls = 0
        with self._fetch_lock():
            while calls < max_calls and self.size() < want:
                state = self._read_state()
                if self._gate_closed(state):
                    break
                calls += 1
                try:
                    photo = self._fetch_batch(fetch, batch_size, state)
                except TransientPhotoError:
                    break
                self._add([photo], self._clock())
        return calls

    def size(self) -> int:
        """How many fresh photos wait in the pool."""
        now = self._clock()
        return sum(1 for _, fetched_at in self._entries() if not self._expired(fetched_at, now))

    def clear(self) -> int:
        """Discard every pooled photo; return how many were removed."""
        return sum(1 for name, _ in self._entries() if _unlink_quietly(self.entries_dir / name))

    def rate_limit_state(self) -> dict[str, Any]:
        """The gate and the last known budget, for the admin page."""
        state = self._read_state()
        now = self._clock()
        blocked_until = state.get("blocked_until")
        blocked = blocked_until is not None and now < blocked_until
        return {
            "remaining": state.get("remaining"),
            "limit": state.get("limit"),
            "observed_at": state.get("observed_at"),
            "blocked": blocked,
            "blocked_until": blocked_until if blocked else None,
            "retry_after": blocked_until - now if blocked else None,
            "reason": state.get("reason") if blocked else None,
            "code": state.get("code") if blocked else None,
            "message": state.get("message") if blocked else None,
            "consecutive_rate_limits": state.get("strikes", 0),
        }

    # --- Claiming ---

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

    def _claim(self) -> dict[str, Any] | None:
        now = self._clock()
        for name, fetched_at in self._entries():
            path = self.entries_dir / name
            if self._expired(fetched_at, now):
                _unlink_quietly(path)
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # another process claimed it
            # The unlink is the claim: exactly one of the readers succeeds.
            if not unlink_durable(path):
                continue
            try:
                return json.loads(data)["photo"]
            except (ValueError, KeyError, TypeError):
                log.error("Discarded unreadable photo pool entry %s", path)
        return None

    # --- Fetching ---

    @contextmanager
    def _fetch_lock(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _fetch_batch(self, fetch: Fetch, batch_size: int, state: dict[str, Any]) -> dict[str, Any]:
        try:
            batch = fetch(batch_size)
        except RateLimited as exc:
            exc.retry_after = self._close_for_rate_limit(
                state, exc.code, exc.message, at_least=exc.retry_after
            )
            raise
        except TransientPhotoError as exc:
            exc.retry_after = self._close_for_error(state, exc)
            raise
        photos = _unique_by_id(batch)
        if not photos:
            raise TransientPhotoError(
                "photo_source_empty", "The photo service returned no photos; trying again later."
            )
        now = self._clock()
        self._record_success(state, batch, now)
        self._add(photos[1:], now)
        return photos[0]

    def _add(self, photos: list[dict[str, Any]], fetched_at: float) -> None:
        batch = secrets.token_hex(4)
        stamp = f"{round(fetched_at * 1000):013d}-{batch}"
        # One fsync for the batch instead of two per photo: an entry a power
        # cut leaves empty is discarded as unreadable, and a lost one is
        # only a photo fetched for nothing.
        for index, photo in enumerate(photos):
            document = {"fetched_at": fetched_at, "batch": batch, "photo": photo}
            path = self.entries_dir / f"{stamp}-{index:03d}.json"
            write_atomic(path, dumps(document), tmp_dir=self.tmp_dir, durable=False)
        fsync_dir(self.entries_dir)

    # --- The gate ---

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("Ignoring unreadable photo rate-limit state %s", self.state_path)
            return {}
        return state if isinstance(state, dict) else {}

    def _write_state(self, state: dict[str, Any]) -> None:
        write_atomic(self.state_path, dumps(state), tmp_dir=self.tmp_dir)

    def _gate_closed(self, state: dict[str, Any]) -> bool:
        blocked_until = state.get("blocked_until")
        return blocked_until is not None and blocked_until > self._clock()

    def _raise_if_gated(self, state: dict[str, Any]) -> None:
        blocked_until = state.get("blocked_until")
        if blocked_until is None:
            return
        wait = blocked_until - self._clock()
        if wait <= 0:
            return
        code, message = state.get("code", "rate_limited"), state.get("message", "")
        if state.get("reason") == _RATE_LIMITED:
            raise RateLimited(code, message or RateLimited().message, retry_after=wait)
        raise TransientPhotoError(code, message or "The photo service failed.", retry_after=wait)

    def _probe_delay(self, strikes: int) -> float:
        interval = min(self.FIRST_PROBE_SECONDS * 2 ** (strikes - 1), self.MAX_PROBE_SECONDS)
        return interval * (1 + self.jitter * self._random.random())

    def _close_for_rate_limit(
        self, state: dict[str, Any], code: str, message: str, *, at_least: float | None = None
    ) -> float:
        """Close the gate until the next probe; return the seconds until then."""
        now = self._clock()
        strikes = state.get("strikes", 0) + 1
        delay = max(self._probe_delay(strikes), at_least or 0.0)
        state.update(
            strikes=strikes,
            blocked_until=now + delay,
            reason=_RATE_LIMITED,
            code=code,
            message=message,
            remaining=0,
            observed_at=now,
        )
        self._write_state(state)
        log.warning("Photo source rate limited; next probe in %.0f s", delay)
        return delay

    def _close_for_error(self, state: dict[str, Any], exc: TransientPhotoError) -> float:
        now = self._clock()
        delay = max(self.error_cooldown_seconds, exc.retry_after or 0.0)
        state.update(
            blocked_until=now + delay, reason=_UNAVAILABLE, code=exc.code, message=exc.message
        )
        self._write_state(state)
        return delay

    def _record_success(self, state: dict[str, Any], batch: list[Any], now: float) -> None:
        remaining = getattr(batch, "remaining", None)
        limit = getattr(batch, "limit", None)
        state.update(remaining=remaining, limit=limit, observed_at=now)
        if remaining == 0:
            # This call spent the budget: the next one would be refused.
            source = getattr(batch, "source", None)
            code = f"{source}_rate_limited" if source else "rate_limited"
            self._close_for_rate_limit(state, code, RateLimited().message)
            return
        state.update(strikes=0, blocked_until=None, reason=None, code=None, message=None)
        self._write_state(state)


def _unique_by_id(photos: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[Any] = set()
    unique = []
    for photo in photos:
        photo_id = photo.get("photo_id")
        if photo_id in seen:
            continue
        seen.add(photo_id)
        unique.append(photo)
    return unique


def _unlink_quietly(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
