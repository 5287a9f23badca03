"""Live job events for the event streams of one web process.

One daemon thread per process follows the shared event log
(:mod:`filestore.eventlog`) and keeps the recent events in memory, each
encoded once in the Server-Sent Events format; each
open stream waits on a condition for events after its own position. So a
change costs one read of the log per process, however many streams are
open, and a stream that reconnects with ``Last-Event-ID`` is served from
memory, or from the log when it is further behind.
"""

from __future__ import annotations

import bisect
import functools
import json
import threading
import time
from pathlib import Path

from filestore.eventlog import EventLog, EventsLost
from jobs import store


def sse_block(event_id: int, event: dict) -> bytes:
    """One event in the Server-Sent Events format."""
    kind = event.get("type", "job")
    data = event.get("job") if kind == "job" else {"id": event.get("id")}
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {kind}\ndata: {payload}\n\n".encode()


RECENT_EVENTS = 5000


class EventFeed:
    def __init__(
        self, log: EventLog, *, poll_seconds: float = 0.05, batch_seconds: float = 0.25
    ) -> None:
        self.log = log
        self.poll_seconds = poll_seconds
        # After handing out events, wait this long before the next read: under
        # a burst of changes each stream wakes four times a second with a batch,
        # not once per change (500 streams x 1,000 changes/s would be half a
        # million wake-ups a second).
        self.batch_seconds = batch_seconds
        self._condition = threading.Condition()
        self._ids: list[int] = []
        # Each event encoded once for every stream that sends it.
        self._blocks: list[bytes] = []
        self._position = log.latest_id()
        # Every event after this position is in ``_blocks``.
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
                    self._ids.extend(event_id for event_id, _ in events)
                    self._blocks.extend(sse_block(event_id, event) for event_id, event in events)
                    if len(self._ids) > 2 * RECENT_EVENTS:
                        drop = len(self._ids) - RECENT_EVENTS
                        self._floor = self._ids[drop - 1]
                        del self._ids[:drop], self._blocks[:drop]
                    self._position = position
                    self._condition.notify_all()
                self._closed.wait(self.batch_seconds)
            else:
                self._closed.wait(self.poll_seconds)

    def wait(self, position: int, timeout: float) -> tuple[bytes, int]:
        """The events after ``position`` as SSE bytes (empty if none came within
        ``timeout``), and the position after them. Raises EventsLost when they
        are no longer kept."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._position <= position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b"", position
                self._condition.wait(remaining)
            if position >= self._floor:
                start = bisect.bisect_right(self._ids, position)
                return b"".join(self._blocks[start:]), self._position
        events, position = self.log.read_after(position)
        return b"".join(sse_block(event_id, event) for event_id, event in events), position


@functools.cache
def _feed(root: Path) -> EventFeed:
    return EventFeed(EventLog(root / "events"))


def feed() -> EventFeed:
    return _feed(store.data_dir())
