"""How many jobs a second the workers can run, measured while they run them.

Admission (:mod:`jobs.admission`) accepts a job only if the second it falls
due in still has room: the room is this capacity, not a number guessed for
one machine. It is measured where the work is done:

- every worker process adds, after each batch (:func:`jobs.tasks.run_jobs`),
  the jobs it ran and the seconds it spent to two counters in memory shared
  by the cluster's processes (:func:`share`, made before they are forked);
- the cluster's main process reads them at each heartbeat
  (:class:`Meter`): a batch of n jobs takes about ``a + b n`` seconds (a
  fixed cost per batch, and one per job), fitted to the batches since the
  last beat; the jobs a worker process runs per second in full batches
  (``JOBS_BATCH_SIZE``), times the worker processes, smoothed over the last
  beats, is the cluster's capacity, sent with its heartbeat;
- a web process adds up the capacity of the clusters whose heartbeat is
  fresh (:func:`measured`), read at most once a second.

Jobs per *busy* second, not jobs per second: a worker that waits for work
runs few jobs a second but could run many. And in full batches: under a
light load batches are small and their fixed cost weighs on each job, but
the load that admission must judge is the heavy one, under which they are
full. A batch's seconds are its wall time, so a busy machine (the web
servers taking the same cores) lowers the figure, as it should. Until a
cluster has measured, and whenever the batches since the last beat were too
few to fit, the last figure stands; before any, admission counts on
``JOBS_START_CAPACITY``.
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

# Sums over the batches run, for a least-squares fit of seconds = a + b jobs:
# batches, jobs, seconds, jobs squared, jobs times seconds.
_SUMS = 5
_shared: Any = None  # multiprocessing.Array("d", _SUMS), shared by the cluster's processes


def share() -> None:
    """Make the counters the cluster's processes add to (call before they are forked)."""
    global _shared
    _shared = multiprocessing.get_context("fork").Array("d", _SUMS)


def record(jobs: int, seconds: float) -> None:
    """Count a batch of ``jobs`` run in ``seconds`` (a no-op outside a cluster)."""
    shared = _shared
    if shared is None or jobs <= 0:
        return
    seconds = max(seconds, 0.0)
    with shared.get_lock():
        shared[0] += 1
        shared[1] += jobs
        shared[2] += seconds
        shared[3] += jobs * jobs
        shared[4] += jobs * seconds


def per_second_in_full_batches(sums: list[float], batch_size: int) -> float | None:
    """Jobs a second one worker runs in batches of ``batch_size``, from the fit of
    ``seconds = a + b jobs`` to the batches summed in ``sums``; None when they are too few."""
    count, jobs, seconds, squares, products = sums
    if jobs < MIN_JOBS or seconds <= 0:
        return None
    spread = count * squares - jobs * jobs
    per_job = seconds / jobs  # without a spread of sizes: the average, fixed cost included
    fixed = 0.0
    if count >= 3 and spread > 0:
        slope = (count * products - jobs * seconds) / spread
        intercept = (seconds - slope * jobs) / count
        if slope > 0 and intercept >= 0:
            per_job, fixed = slope, intercept
    return batch_size / (fixed + per_job * batch_size)


class Meter:
    """The cluster's capacity, read from the shared counters at each heartbeat."""

    def __init__(self, workers: int, batch_size: int) -> None:
        self.workers = max(1, workers)
        self.batch_size = max(1, batch_size)
        self.capacity: float | None = None
        self._seen = [0.0] * _SUMS

    def read(self) -> float | None:
        """Jobs per second the cluster can run (smoothed), or None before any measure."""
        if _shared is None:
            return self.capacity
        with _shared.get_lock():
            now = list(_shared)
        each = per_second_in_full_batches(
            [new - old for new, old in zip(now, self._seen, strict=True)], self.batch_size
        )
        if each is None:
            return self.capacity  # too little work since the last beat to say more
        self._seen = now
        reading = self.workers * each
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


def reset() -> None:
    """Forget the cached reading (tests)."""
    global _cached
    with _lock:
        _cached = None
