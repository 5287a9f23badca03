"""What the worker's main process does beside django-q2's cluster.

django-q2's sentinel, pusher, workers and monitor run the tasks; the main
process of ``manage.py qcluster`` runs a :class:`Supervisor`: a recovery
pass at start, then a heartbeat every few seconds and a recovery pass every
minute, until the cluster stops.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from jobs import clock, health, photos
from jobs.recovery import RecoveryReport, recover_jobs

logger = logging.getLogger(__name__)


class Prefetcher(threading.Thread):
    """Fetches photos ahead for jobs about to fall due (see photos.prefetch)."""

    every = 0.5
    after_error = 30.0

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__(name="photo-prefetch", daemon=True)
        self.stopping = stopping

    def run(self) -> None:
        pause = self.every
        while not self.stopping.wait(pause):
            try:
                photos.prefetch()
                pause = self.every
            except Exception:
                # A bad key or a broken store: the jobs report it; try later.
                logger.exception("Fetching photos ahead failed; trying again later")
                pause = self.after_error


class Supervisor:
    heartbeat_every = 5.0
    recover_every = 60.0

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._next_recovery = 0.0

    def tick(self) -> RecoveryReport | None:
        """One round of the loop: heartbeat, and recovery when it is due (its report)."""
        now = clock.now()
        try:
            health.write_heartbeat(workers=settings.Q_CLUSTER.get("workers"))
        except OSError:
            # A full or flaky disk must not end this loop: the cluster would go
            # on running jobs with no recovery pass and no way to stop it cleanly.
            logger.exception("Could not write the worker heartbeat; /api/health reports it down")
        if now >= self._next_recovery:
            self._next_recovery = now + self.recover_every
            try:
                report = recover_jobs()
                health.prune_heartbeats()
                return report
            except Exception:
                logger.exception("The recovery pass failed; it runs again in a minute")
        return None

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
