"""What the worker's main process does beside django-q2's cluster.

django-q2's sentinel, pusher, workers and monitor run the tasks; the main
process of ``manage.py qcluster`` runs a :class:`Supervisor`: a recovery
pass at start, then a heartbeat every few seconds and a recovery pass every
minute, until the cluster stops. With every heartbeat (the first one at
start) it takes back the leases of worker clusters known dead
(:mod:`jobs.liveness`), so their interrupted jobs run again at once rather
than when the leases run out.

The main process's pid is the cluster's identity in every lease it takes
(:mod:`storage.owners`); :func:`die_with_parent` makes that identity
honest: once the main process is gone, so is every process of its cluster,
and none of its runs can still be going.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

from django.conf import settings

from jobs import admission, capacity, clock, health, liveness, photos, store
from jobs.recovery import RecoveryReport, recover_jobs
from jobsite.machine_load import MachineLoad
from storage.owners import OWNER_ENV, owner_for

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_forking_pid: int | None = None


def become_cluster_owner() -> None:
    """Make this process the owner its cluster's leases name, before it starts the cluster.

    The processes it starts inherit the identity through the environment,
    and are set to die with their parent (:func:`die_with_parent`).
    """
    os.environ[OWNER_ENV] = owner_for(os.getpid())
    if sys.platform.startswith("linux"):
        os.register_at_fork(before=_note_forking_pid, after_in_child=die_with_parent)


def _note_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def die_with_parent() -> None:
    """In a freshly forked child: be killed when the process that forked it dies.

    django-q2's processes outlive a killed main process otherwise (its
    sentinel, pusher and workers go on leasing and running jobs with no
    heartbeat). The hook is inherited by every fork, so a killed main
    process takes the sentinel down, and the sentinel its pusher, workers
    and monitor. All of them fork from their main thread, whose end is what
    the kernel watches.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            logger.error("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
            return
    except (OSError, AttributeError):
        logger.exception("cannot ask to die with the parent process")
        return
    if _forking_pid is not None and os.getppid() != _forking_pid:
        os._exit(1)  # the parent died before the request above took effect


class Prefetcher(threading.Thread):
    """Fetches photos ahead for jobs about to fall due (see photos.prefetch).

    A pass that made all the calls a refill may make left the pool short of
    what falls due: the next pass starts at once. With a pause after each,
    the pool was refilled by at most 300 photos per half second, and under
    a stream of 700 jobs a second or more the jobs ran out of photos and
    waited for fetches of their own.
    """

    every = 0.5
    after_error = 30.0

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__(name="photo-prefetch", daemon=True)
        self.stopping = stopping

    def run(self) -> None:
        pause = self.every
        while not self.stopping.wait(pause):
            try:
                calls = photos.prefetch()
                pause = 0.0 if calls >= photos.REFILL_CALLS else self.every
            except Exception:
                # A bad key or a broken store: the jobs report it; try later.
                logger.exception("Fetching photos ahead failed; trying again later")
                pause = self.after_error


class Supervisor:
    # Also how often the measured capacity reaches admission (jobs.capacity).
    heartbeat_every = 2.0
    recover_every = 60.0

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._next_recovery = 0.0
        self.meter = capacity.Meter(
            start=settings.JOBS_START_CAPACITY, share_admitted=admission.HEADROOM
        )
        self.load = MachineLoad()

    def tick(self) -> RecoveryReport | None:
        """One round of the loop: heartbeat, leases of dead workers taken back, and
        recovery when it is due (its report)."""
        now = clock.now()
        self.beat()
        try:
            liveness.release_leases_of_dead_owners()
        except Exception:
            logger.exception("Could not take back the leases of dead workers; trying again soon")
        if now >= self._next_recovery:
            self._next_recovery = now + self.recover_every
            try:
                report = recover_jobs()
                health.prune_heartbeats()
                return report
            except Exception:
                logger.exception("The recovery pass failed; it runs again in a minute")
        return None

    def beat(self) -> None:
        try:
            measured = self.meter.read(behind=_behind(), busy=self.load.read())
            health.write_heartbeat(
                workers=settings.Q_CLUSTER.get("workers"),
                # Jobs a second this cluster can run, for admission (jobs.capacity).
                capacity=None if measured is None else round(measured, 1),
            )
        except OSError:
            # A full or flaky disk must not end this loop: the cluster would go
            # on running jobs with no recovery pass and no way to stop it cleanly.
            logger.exception("Could not write the worker heartbeat; /api/health reports it down")

    def run(self, is_alive) -> None:
        """Tick until ``is_alive()`` is false or :meth:`stop` is called."""
        prefetch_stop = threading.Event()
        prefetcher = Prefetcher(prefetch_stop)
        prefetcher.start()
        try:
            while not self.stopping.is_set() and is_alive():
                self.tick()
                deadline = time.monotonic() + self.heartbeat_every
                while not self.stopping.is_set() and is_alive() and time.monotonic() < deadline:
                    time.sleep(0.2)
        finally:
            prefetch_stop.set()
            prefetcher.join(timeout=5)  # a fetch in flight ends by its own timeout
            health.remove_heartbeat()

    def stop(self) -> None:
        self.stopping.set()


def _behind() -> bool:
    """Whether due jobs are waiting for the workers (see :mod:`jobs.capacity`)."""
    try:
        return store.broker().oldest_due_lateness() > capacity.behind_seconds()
    except Exception:
        return False
