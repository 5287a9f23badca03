"""Backpressure: a create is refused when its job could not run on time.

Arrivals do not slow down when the worker does. Accepting every job once
the worker falls behind makes *every* job late, the ones already accepted
included; refusing some quickly (``503`` with ``Retry-After``, which the
page's outbox and any well-behaved client retry) keeps the accepted ones on
time. Two rules, both settings, and what the refusals cost:

- **Capacity at the due time** (``JOBS_MAX_DUE_PER_SECOND``): a job is
  accepted only if fewer jobs than that fall due in the same second. With
  ``auto`` (the default) that is a share (:data:`HEADROOM`) of what the
  workers measure they can run (:mod:`jobs.capacity`), or of
  ``JOBS_START_CAPACITY`` until they have measured it. The broker's queue
  is indexed by due time, so this costs one cheap look per create, and it
  looks ahead: a burst of creates due in five seconds is stopped now,
  before any job is late, not once it is. Jobs with other delays land in
  other seconds and are not refused.
- **Refusals cost too.** A refused create is still read, checked and
  answered, and how many are refused is up to the clients, not to
  admission: under a stream beyond the limit, work admission cannot shed
  shares the cores with the jobs it admitted, and its swings show as their
  lateness. So each create this process refused in the last second per
  one it admitted takes :data:`REFUSAL_COST` of a job from the capacity
  admission fills (the start capacity or a measured one): a stream below
  the limit has nothing refused and is let in up to :data:`HEADROOM` of
  the capacity; under a stream three times what the machine runs, 1.5 to
  2.5 refused per admitted bring it down to 0.72-0.78 (in the first
  seconds, before any job is due and measured, about 970 a second are
  admitted instead of 1,170 on two cores).
- **Lateness now** (``JOBS_MAX_LATENESS``): while the oldest due job has
  waited longer than that, the worker is behind whatever the counts say (a
  slow disk, a slow photo source), and creates are refused until it
  catches up.

Both readings are cached per process for a fraction of a second, and the
count adds this process's own creates since its reading, so the cost per
create is a dictionary lookup. With several web processes each adds its
own creates only, so a reading near the limit is taken again sooner
(``NEAR_TTL``): the count may then run over by what the others accepted
within that moment. With a quarter of a second throughout, two processes
under a stream three times what the workers run accepted a quarter more
than the limit, and the accepted jobs ran up to a second late.

A reading of a second that this process adds few jobs to serves longer,
near the limit or not: up to ``QUIET_TTL``, while its own creates since
the reading stay under ``QUIET_SHARE`` of the limit. Jobs with different
delays fall due in different seconds: with delays of 5 to 24 s, one
second's creates go to twenty due seconds, each filled over twenty
seconds, and readings by time alone listed each due second's bucket (up
to a thousand names) four times a second, and fifty times a second in
the two seconds each spent near the limit. A process runs a second over
the limit only by what it admits into it itself while its reading is
stale; past ``NEAR_TTL`` or ``COUNT_TTL`` that is fewer than
``QUIET_SHARE`` of the limit before it reads again.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from jobs import capacity, store
from jobs.errors import JobError

# How long a reading of the queue serves the creates of one process.
COUNT_TTL = 0.25
# ... and once the reading and this process's own creates since come within
# NEAR_SHARE of the limit, for this long: a process filling that second
# fast then sees the other processes' creates within 20 ms, at the price of
# one listing per 20 ms per second of due times being filled fast.
NEAR_SHARE = 0.9
NEAR_TTL = 0.02
# Past either, a reading serves on for up to this long while this process
# has added fewer than QUIET_SHARE of the limit to its second since.
QUIET_TTL = 1.0
QUIET_SHARE = 0.01
LATENESS_TTL = 0.5
# The share of the capacity admission fills while it refuses nothing: the
# rest absorbs what the measure cannot see (what is admitted now runs only
# after its delay, when the machine may be busier). Refusals lower it (see
# REFUSAL_COST). At 0.8, a steady 1,000 jobs/s on two cores was refused in
# part in four runs of six (the machine 75-85 % busy: a limit of 940-1,070);
# at 0.9 without the refusals' cost, in none, but the jobs accepted at 3,000
# offered ran up to 0.97 s late (p99) instead of 0.33-0.52 s.
HEADROOM = 0.9
# What a refused create costs the machine, as a share of an admitted job's
# whole work (its create and its run). On two cores at 3,000 creates/s
# offered, 1.7 refused per admitted, the web's CPU per admitted create was
# 0.55-0.8 ms against 0.45 ms at 1,000/s with none refused: about 0.1 ms a
# refusal, against about 1 ms for a job's create and run. Taken from the
# capacity admission fills, it brings the share admitted under that
# stream (1.5-2.5 refused per admitted) back to 0.72-0.78.
REFUSAL_COST = 0.1
# Refusals per admitted create counted at most: however many are refused,
# the capacity admission fills is at most halved by them (10 x REFUSAL_COST
# = 1; all refused, e.g. while the workers are behind, would otherwise
# leave it near nothing for a while after they catch up).
MOST_REFUSED_PER_ADMITTED = 10.0
# Admitted and refused creates are counted over this long.
TALLY_SECONDS = 1.0


def due_limit() -> int:
    """How many jobs may fall due in one second (0: no limit), as this process admits now."""
    return _admission.limit()


class Overloaded(JobError):
    status = 503
    title = "Too busy"
    code = "overloaded"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass
class _Reading:
    value: float
    at: float
    added: int = 0


class Admission:
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[int, _Reading] = {}
        self._lateness: _Reading | None = None
        # Creates admitted and refused since _tally_at, and the refusals per
        # admitted create of the last whole TALLY_SECONDS.
        self._tally_at = clock()
        self._admitted = 0
        self._refused = 0
        self._refused_per_admitted = 0.0

    def limit(self) -> int:
        """How many jobs may fall due in one second (0: no limit)."""
        setting = settings.JOBS_MAX_DUE_PER_SECOND
        if setting != "auto":
            return int(setting)
        # The start capacity is a capacity too: the same share of it is
        # admitted, so the limit does not drop when the first measure comes
        # (the meter grows from it, see jobs.capacity.Meter).
        measured = capacity.measured()
        if measured is None:
            measured = settings.JOBS_START_CAPACITY
        refusals = REFUSAL_COST * self._refused_per_admitted
        return max(1, int(HEADROOM * measured / (1 + refusals)))

    def admit(self, *, due_at: float) -> None:
        """Count a job due at ``due_at``; raise :class:`Overloaded` if it could not run on time."""
        try:
            self._admit(due_at)
        except Overloaded:
            self._tally(refused=True)
            raise
        self._tally(refused=False)

    def _admit(self, due_at: float) -> None:
        max_due = self.limit()
        max_lateness = settings.JOBS_MAX_LATENESS
        if max_lateness and self._current_lateness() > max_lateness:
            raise Overloaded(
                "The worker is behind; new jobs are refused until it catches up. Retry shortly.",
                retry_after=max(1, math.ceil(max_lateness)),
            )
        if not max_due:
            return
        second = int(due_at)
        with self._lock:
            reading = self._counts.get(second)
            fresh = reading is not None and self._fresh(reading, max_due)
        if not fresh:
            reading = _Reading(store.broker().scheduled_around(due_at), self._clock())
        with self._lock:
            if not fresh:
                self._counts[second] = reading
                self._forget_old(second)
            assert reading is not None
            if reading.value + reading.added >= max_due:
                raise Overloaded(
                    f"Too many jobs are due at that time (at most {max_due} a second); "
                    "retry shortly for a later one.",
                    retry_after=1,
                )
            reading.added += 1

    def _tally(self, *, refused: bool) -> None:
        now = self._clock()
        with self._lock:
            elapsed = now - self._tally_at
            if elapsed >= TALLY_SECONDS:
                if elapsed < 2 * TALLY_SECONDS:
                    ratio = self._refused / max(1, self._admitted)
                    self._refused_per_admitted = min(ratio, MOST_REFUSED_PER_ADMITTED)
                else:  # a quiet gap since: nothing is being refused now
                    self._refused_per_admitted = 0.0
                self._tally_at = now
                self._admitted = self._refused = 0
            if refused:
                self._refused += 1
            else:
                self._admitted += 1

    def _fresh(self, reading: _Reading, max_due: int) -> bool:
        """Whether a count read earlier may still decide (see ``NEAR_TTL``, ``QUIET_TTL``)."""
        age = self._clock() - reading.at
        near = reading.value + reading.added >= NEAR_SHARE * max_due
        if age < (NEAR_TTL if near else COUNT_TTL):
            return True
        return age < QUIET_TTL and reading.added < QUIET_SHARE * max_due

    def _current_lateness(self) -> float:
        with self._lock:
            reading = self._lateness
            if reading is not None and self._clock() - reading.at < LATENESS_TTL:
                return reading.value
        value = store.broker().oldest_due_lateness()
        with self._lock:
            self._lateness = _Reading(value, self._clock())
        return value

    def _forget_old(self, second: int) -> None:
        # Seconds before the one just read are in the past for new creates.
        if len(self._counts) > 64:
            for old in [key for key in self._counts if key < second - 1]:
                del self._counts[old]


_admission = Admission()


def admit(*, due_at: float) -> None:
    _admission.admit(due_at=due_at)


def reset() -> None:
    """Forget every reading (tests: each starts with an empty queue)."""
    global _admission
    _admission = Admission()
    capacity.reset()
