"""Live job events for the event streams of one web process.

One daemon thread per process follows the shared event log
(:mod:`filestore.eventlog`) and keeps the recent events in memory; each
open stream waits on a condition for events after its own position. So a
change costs one read of the log per process, however many streams are
open, and a stream that reconnects with ``Last-Event-ID`` is served from
memory, or from the log when it is further behind.
"""

from __future__ import annotations

import bisect
import functools
import threading
import time
from pathlib import Path

from filestore.eventlog import EventLog, EventsLost
from jobs import store

Event = tuple[int, dict]

RECENT_EVENTS = 5000


class EventFeed:
    def __init__(
        self, log: EventLog, *, poll_seconds: float = 0.05, batch_seconds: float = 0.1
    ) -> None:
        self.log = log
        self.poll_seconds = poll_seconds
        # After handing out events, wait this long before the next read: under
        # a burst of changes each stream wakes ten times a second with a batch,
        # not once per change (500 streams x 1,000 changes/s would be half a
        # million wake-ups a second).
        self.batch_seconds = batch_seconds
        self._condition = threading.Condition()
        self._recent: list[Event] = []
        self._ids: list[int] = []
        self._position = log.latest_id()
        # Every event after this position is in ``_recent``.
        self._floor = self._position
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="event-feed", daemon=True)
        self._thread.start()

    @property
    def position(self) -> int:
        """Where a new stream starts to see only events from now on.

        Read from the log, not from the follower thread, which may lag a
        few milliseconds behind.
        """
        try:
            return self.log.latest_id()
        except OSError:
            with self._condition:
                return self._position

    def close(self) -> None:
        """Stop following the log (the web process's feed lives as long as it does)."""
        self._closed.set()
        self._thread.join()

    def _follow(self) -> None:
        while not self._closed.is_set():
            try:
                events, position = self.log.read_after(self._position)
            except EventsLost:
                events, position = [], self.log.latest_id()
            except OSError:
                events, position = [], self._position
            if events or position != self._position:
                with self._condition:
                    self._recent.extend(events)
                    self._ids.extend(event_id for event_id, _ in events)
                    if len(self._recent) > 2 * RECENT_EVENTS:
                        drop = len(self._recent) - RECENT_EVENTS
                        self._floor = self._ids[drop - 1]
                        del self._recent[:drop], self._ids[:drop]
                    self._position = position
                    self._condition.notify_all()
                self._closed.wait(self.batch_seconds)
            else:
                self._closed.wait(self.poll_seconds)

    def wait(self, position: int, timeout: float) -> tuple[list[Event], int]:
        """Events after ``position`` (waiting up to ``timeout`` for some) and the
        position after them. Raises EventsLost when they are no longer kept."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._position <= position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [], position
                self._condition.wait(remaining)
            if position >= self._floor:
                start = bisect.bisect_right(self._ids, position)
                return self._recent[start:], self._position
        # Further behind than memory reaches: read the log itself.
        return self.log.read_after(position)


@functools.cache
def _feed(root: Path) -> EventFeed:
    return EventFeed(EventLog(root / "events"))


def feed() -> EventFeed:
    return _feed(store.data_dir())
