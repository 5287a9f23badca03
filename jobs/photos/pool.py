"""The pool of fetched-but-unused photos, shared by every worker process.

One call to the photo source returns up to ``BATCH_SIZE`` random photos
while a job needs one; with a demo key's 50 calls an hour, one call per job
would cap the system at 50 jobs an hour. The pool keeps the rest of each
batch, briefly (``KEEP_UNUSED_SECONDS``: random photos should stay fresh),
and hands each photo to exactly one job. Photos are deduplicated by id
before they are kept, so one batch never yields the same photo twice.

A caller that finds the pool empty takes the store's fetch lock and looks
again before it calls the source, so only one process fetches at a time
and a batch is fetched only when the previous one is used up. Every call
goes through the rate-limit gate (:mod:`jobs.photos.gate`).

Where the photos are kept is the store's business
(:class:`storage.protocols.PhotoPoolStore`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from jobs import metrics
from jobs.photos.errors import PhotoSourceError, RateLimited, TransientPhotoError
from jobs.photos.gate import GateState, RateLimitGate
from jobs.photos.results import BATCH_SIZE, Fetch
from storage.protocols import PhotoPoolStore

KEEP_UNUSED_SECONDS = 600.0
# The most calls one refill makes while it holds the fetch lock (jobs that
# find the pool empty wait for it meanwhile).
REFILL_CALLS = 10


class PhotoPool:
    """Hands out photos from a shared pool, fetching a batch when it is empty.

    ``jitter`` and ``error_cooldown_seconds`` tune the gate (see
    :class:`RateLimitGate`).
    """

    def __init__(
        self,
        store: PhotoPoolStore,
        *,
        clock: Callable[[], float] = time.time,
        jitter: float = 0.2,
        error_cooldown_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.gate = RateLimitGate(
            store, clock=clock, jitter=jitter, error_cooldown_seconds=error_cooldown_seconds
        )
        self._clock = clock

    @property
    def error_cooldown_seconds(self) -> float:
        return self.gate.error_cooldown_seconds

    def take_many(
        self, fetch: Fetch, count: int, *, batch_size: int = BATCH_SIZE
    ) -> list[dict[str, Any] | PhotoSourceError]:
        """``count`` photos for ``count`` jobs, each one no other caller gets, in one pass.

        What the pool holds is claimed at once, and the rest fetched (calling
        ``fetch``) in as few calls as the batch size allows, never while the
        rate-limit gate is closed.
        When a call fails, the jobs left without a photo get its error
        (``RateLimited``, ``TransientPhotoError``, ...) in their place.
        """
        photos: list[dict[str, Any] | PhotoSourceError] = [*self.take_at_hand(count)]
        if len(photos) == count:
            return photos
        try:
            self.gate.raise_if_closed(self.gate.read())
            with self.store.fetch_lock():
                # The holder before us may have refilled the pool or closed the gate.
                photos += self.take_at_hand(count - len(photos))
                while len(photos) < count:
                    state = self.gate.read()
                    self.gate.raise_if_closed(state)
                    fetched = self._fetch(fetch, batch_size, state)
                    needed = count - len(photos)
                    photos += fetched[:needed]
                    if fetched[needed:]:
                        self.store.add(fetched[needed:], self._clock())
        except PhotoSourceError as error:
            photos += [error] * (count - len(photos))
        return photos

    def take_at_hand(self, count: int, *, flush: bool = True) -> list[dict[str, Any]]:
        """Up to ``count`` photos the pool holds now, each no other caller gets; never fetches.

        With ``flush=False`` the claims become durable only with a flush of
        :meth:`claim_paths`, which must come before any of the photos is shown.
        """
        if count < 1:
            return []
        return list(self.store.take_many(count, self._clock(), flush=flush))

    def claim_paths(self) -> list[str]:
        """What to flush to make the claims of ``take_at_hand(flush=False)`` durable."""
        return self.store.claim_paths()

    def put_back(self, photos: list[dict[str, Any]]) -> None:
        """Return photos taken and not used (their jobs turned out to be claimed elsewhere)."""
        self.store.add(photos, self._clock())

    def refill(
        self,
        fetch: Fetch,
        *,
        want: int,
        batch_size: int = BATCH_SIZE,
        max_calls: int = REFILL_CALLS,
    ) -> int:
        """Fetch batches ahead of need until ``want`` photos wait; return the calls made.

        Called when jobs are about to fall due, so that they find their
        photos waiting instead of queueing behind one fetch after another.
        It never calls while the gate is closed, and a failure is recorded
        as for :meth:`take_many` and ends the refill (the jobs then fetch and
        retry as usual).
        """
        calls = 0
        with self.store.fetch_lock():
            # Counted once: the pool then grows by what is added here and
            # shrinks by what jobs take meanwhile, so the count can only be
            # high, and a refill that stops short is topped up by the next one.
            # (Counting after every call cost more than the call's own
            # writes, with a hundred entries waiting.)
            waiting = self.size()
            while calls < max_calls and waiting < want:
                state = self.gate.read()
                if self.gate.is_closed(state):
                    break
                calls += 1
                try:
                    photos = self._fetch(fetch, batch_size, state)
                except TransientPhotoError:
                    break
                self.store.add(photos, self._clock())
                waiting += len(photos)
        return calls

    def size(self) -> int:
        """How many fresh photos wait in the pool."""
        return self.store.size(self._clock())

    def clear(self) -> int:
        """Discard every pooled photo; return how many were removed."""
        return self.store.clear()

    def rate_limit_state(self) -> dict[str, Any]:
        """The gate and the last known budget, for the admin page."""
        return self.gate.report()

    def _fetch(self, fetch: Fetch, batch_size: int, state: GateState) -> list[dict[str, Any]]:
        """One call to the source through the gate (the fetch lock held): its distinct photos."""
        try:
            batch = fetch(batch_size)
        except PhotoSourceError as error:
            metrics.unsplash_call(_outcome(error))
            self.gate.on_failure(state, error)
            raise
        metrics.unsplash_call("ok")
        photos = _unique_by_id(batch)
        if not photos:
            raise TransientPhotoError(
                "photo_source_empty", "The photo service returned no photos; trying again later."
            )
        self.gate.on_success(state, batch)
        return photos


def _outcome(error: PhotoSourceError) -> str:
    """The label of a failed call in the metrics."""
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, TransientPhotoError):
        return "transient"
    return "permanent"


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
