"""How many jobs a second the workers can run, measured from what they run.

Admission (:mod:`jobs.admission`) accepts a job only if the second it falls
due in still has room: the room is this capacity, not a number guessed for
one machine. It is found the way a congestion window is:

- every worker process counts the jobs it runs (:func:`record`, after each
  batch of :func:`jobs.tasks.run_jobs`) in a counter shared by the
  cluster's processes (:func:`share`, made before they are forked);
- at each heartbeat the cluster's main process reads how many jobs a
  second the cluster ran since the last one (:class:`Meter`). When due jobs
  were waiting (the oldest had waited more than :func:`behind_seconds`),
  the workers ran all they could: that rate *is* the capacity (taken at
  once when lower, smoothed when higher). When they kept up while running
  close to what admission lets in, they can do more, and the machine's
  processor time tells how much: running ``rate`` jobs a second kept the
  machine's cores busy a share ``busy`` of the time
  (:class:`jobsite.machine_load.MachineLoad`, from ``/proc/stat``), so the
  same work on all of it would run
  ``rate / busy`` (the capacity moves halfway there, at most
  :data:`MOST_STEP` times up per beat). That figure is there at once,
  where growing blindly by a few percent a beat took minutes to find what
  the machine could do, and it counts whatever else shares the cores.
  Without it (not Linux, or the machine too idle for the share to say
  much: below :data:`LEAST_BUSY`) the capacity grows by :data:`GROWTH`.
  Otherwise it stays. The figure goes out with the heartbeat;
- a web process adds up the capacity of the clusters whose heartbeat is
  fresh (:func:`measured`), read at most once a second.

The rate is of the whole machine's work, not of a worker's batches alone:
the web servers, django-q2's pusher and monitor and the photo fetches take
the same cores, and a rate measured while jobs wait counts all of them.
Until a cluster has measured, admission counts on ``JOBS_START_CAPACITY``.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from django.conf import settings

from jobs import backends, clock
from storage.broker import gather_seconds

# Due jobs waiting longer than this at a beat, beyond the broker's gathering
# window (JOBS_GATHER_MS, which due jobs wait on purpose): the workers are behind.
BEHIND_SECONDS = 0.25


def behind_seconds() -> float:
    """How long the oldest due job may wait before the workers count as behind."""
    return BEHIND_SECONDS + gather_seconds()


# Weight of the newest reading in the smoothed capacity.
SMOOTHING = 0.5
# Running at this share of the capacity admission lets in, and keeping up,
# the workers are limited by admission, not by what they can do. Admission
# lets in less than its share while it refuses creates (down to 0.72 of the
# capacity at 2.5 refused per admitted, see jobs.admission.REFUSAL_COST):
# 0.8 of 0.9 still counts that as running close to it...
NEAR_LIMIT = 0.8
# ...and the capacity grows by this factor at each beat: slowly, since what
# admission lets in now runs only after its delay, and a capacity grown too
# far shows only then, as lateness.
GROWTH = 1.03
# The machine must be at least this busy for its share of busy time to
# project a capacity. The projection holds while creates and runs go on at
# the same rate; once the creates stop, the jobs still falling due keep the
# rate up while the cores idle (a quarter busy after a 2,000/s stream), and
# a lower bound let the figure climb past what the machine could run.
LEAST_BUSY = 0.5
# A projected capacity moves the figure up by at most this factor per beat.
MOST_STEP = 1.25
# How long a web process uses one reading of the heartbeats.
READ_TTL = 1.0

_shared: Any = None  # multiprocessing.Value("d"): jobs run by the cluster's processes


def share() -> None:
    """Make the counter the cluster's processes add to (call before they are forked)."""
    global _shared
    _shared = multiprocessing.get_context("fork").Value("d", 0.0)


def record(jobs: int) -> None:
    """Count ``jobs`` run (a no-op outside a cluster)."""
    shared = _shared
    if shared is None or jobs <= 0:
        return
    with shared.get_lock():
        shared.value += jobs


class Meter:
    """The cluster's capacity, read from the shared counter at each heartbeat."""

    def __init__(self, *, start: float, share_admitted: float, clock=time.monotonic) -> None:
        self.start = start  # what admission counts on before any measure
        self.share_admitted = share_admitted  # the share of the capacity admission lets in
        self.capacity: float | None = None
        self._clock = clock
        self._jobs = 0.0
        self._at = clock()

    def read(self, *, behind: bool, busy: float | None = None) -> float | None:
        """Jobs a second the cluster can run, or None before any measure.

        ``behind``: due jobs were waiting at this beat; ``busy``: the share
        of the machine's processor time in use since the last beat, if
        known (see the module's docstring).
        """
        if _shared is None:
            return self.capacity
        with _shared.get_lock():
            jobs = _shared.value
        now = self._clock()
        elapsed = now - self._at
        if elapsed <= 0:
            return self.capacity
        rate = (jobs - self._jobs) / elapsed
        self._jobs, self._at = jobs, now
        current = self.capacity if self.capacity is not None else self.start
        if behind and rate > 0:
            # Down at once (jobs are already late), up smoothed.
            down = self.capacity is None or rate < current
            self.capacity = rate if down else current + SMOOTHING * (rate - current)
        elif not behind and rate >= NEAR_LIMIT * self.share_admitted * current:
            if busy is not None and busy >= LEAST_BUSY:
                projected = min(rate / busy, MOST_STEP * current)
                self.capacity = current + SMOOTHING * (projected - current)
            else:
                self.capacity = max(current, rate) * GROWTH
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
