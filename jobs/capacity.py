"""How many jobs a second the workers can run, measured while they run them.

Admission (:mod:`jobs.admission`) accepts a job only if the second it falls
due in still has room: the room is this capacity, not a number guessed for
one machine. It is measured where the work is done:

- every worker process adds, after each batch (:func:`jobs.tasks.run_jobs`),
  the jobs it ran and the seconds it spent to two counters in memory shared
  by the cluster's processes (:func:`share`, made before they are forked);
- the cluster's main process reads them at each heartbeat
  (:class:`Meter`): jobs per busy second of one worker process, times the
  worker processes, smoothed over the last beats, is the cluster's
  capacity, sent with its heartbeat;
- a web process adds up the capacity of the clusters whose heartbeat is
  fresh (:func:`measured`), read at most once a second.

Jobs per *busy* second, not jobs per second: a worker that waits for work
runs few jobs a second but could run many; a worker that is busy all the
time shows what it can do. A batch's seconds are its wall time, so a busy
machine (the web servers taking the same cores) lowers the figure, as it
should. Until a cluster has run a batch, ``JOBS_MIN_CAPACITY`` stands in.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from django.conf import settings

from jobs import backends, clock

# Weight of the newest beat's reading in the smoothed capacity.
SMOOTHING = 0.3
# A reading needs at least this many jobs to count: a few small batches say
# more about fixed costs than about what the workers can do.
MIN_JOBS = 20
# How long a web process uses one reading of the heartbeats.
READ_TTL = 1.0

_shared: Any = None  # multiprocessing.Array("d", 2): jobs run, seconds spent


def share() -> None:
    """Make the counters the cluster's processes add to (call before they are forked)."""
    global _shared
    _shared = multiprocessing.get_context("fork").Array("d", 2)


def record(jobs: int, seconds: float) -> None:
    """Count a batch of ``jobs`` run in ``seconds`` (a no-op outside a cluster)."""
    shared = _shared
    if shared is None or jobs <= 0:
        return
    with shared.get_lock():
        shared[0] += jobs
        shared[1] += max(seconds, 0.0)


class Meter:
    """The cluster's capacity, read from the shared counters at each heartbeat."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.capacity: float | None = None
        self._seen = (0.0, 0.0)

    def read(self) -> float | None:
        """Jobs per second the cluster can run (smoothed), or None before any measure."""
        if _shared is None:
            return self.capacity
        with _shared.get_lock():
            now = (_shared[0], _shared[1])
        jobs, seconds = now[0] - self._seen[0], now[1] - self._seen[1]
        if jobs < MIN_JOBS or seconds <= 0:
            return self.capacity  # too little work since the last beat to say more
        self._seen = now
        reading = self.workers * jobs / seconds
        if self.capacity is None:
            self.capacity = reading
        else:
            self.capacity += SMOOTHING * (reading - self.capacity)
        return self.capacity


_lock = threading.Lock()
_cached: tuple[float, float | None] | None = None


def measured() -> float | None:
    """The capacity of every cluster with a fresh heartbeat (jobs/s), or None if none says."""
    global _cached
    with _lock:
        cached = _cached
        if cached is not None and time.monotonic() - cached[0] < READ_TTL:
            return cached[1]
    total: float | None = None
    try:
        beats = backends.heartbeats().beats()
    except Exception:
        beats = []
    now = clock.now()
    for beat in beats:
        value = beat.get("capacity")
        fresh = now - beat["at"] <= settings.JOBS_HEARTBEAT_MAX_AGE
        if fresh and isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            total = (total or 0.0) + float(value)
    with _lock:
        _cached = (time.monotonic(), total)
    return total


def capacity() -> float:
    """What admission counts on: the measured capacity, or ``JOBS_MIN_CAPACITY`` before it."""
    value = measured()
    return max(value, float(settings.JOBS_MIN_CAPACITY)) if value else settings.JOBS_MIN_CAPACITY


def reset() -> None:
    """Forget the cached reading (tests)."""
    global _cached
    with _lock:
        _cached = None
