"""Live job events for the event streams of one web process.

One daemon thread per process follows the shared event log (files, or a
Redis Stream: :func:`jobs.backends.event_log`) and keeps the recent events
in memory, each encoded once in the Server-Sent Events format; each open stream waits
for events after its own position, on a condition (a stream in a thread)
or on a future of its event loop (a stream in a coroutine). So a change
costs one read of the log per process, however many streams are open,
and a stream that reconnects with ``Last-Event-ID`` is served from
memory, or from the log when it is further behind.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import threading
import time

from filestore.eventlog import EventLog, EventsLost
from jobs import backends
from redisstore.eventlog import RedisEventLog


def sse_block(event_id: int, event: dict) -> bytes:
    """One event in the Server-Sent Events format."""
    kind = event.get("type", "job")
    data = event.get("job") if kind == "job" else {"id": event.get("id")}
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {kind}\ndata: {payload}\n\n".encode()


RECENT_EVENTS = 5000


class EventFeed:
    def __init__(
        self,
        log: EventLog,
        *,
        poll_seconds: float = 0.05,
        batch_seconds: float = 0.25,
        tick_seconds: float = 1.0,
    ) -> None:
        self.log = log
        self.poll_seconds = poll_seconds
        # Coroutines waiting for events are also woken this often, so that
        # each can send its heartbeat or end on time without a timer of its
        # own (thousands of timers cost more than one wake-up a second).
        self.tick_seconds = tick_seconds
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
        # Counts the times the log started over below what was followed (the
        # data directory was reset or restored): a stream waiting at a
        # position of the old log must start over too.
        self._generation = 0
        # The last batch handed out, joined once for all the streams that
        # were at the same position: (start index, end index, bytes).
        self._joined: tuple[int, int, bytes] = (0, 0, b"")
        # Event loops whose streams wait for changes, each with the future
        # resolved at the next change.
        self._loops: dict[asyncio.AbstractEventLoop, asyncio.Future] = {}
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

    @property
    def generation(self) -> int:
        with self._condition:
            return self._generation

    def close(self) -> None:
        """Stop following the log (the web process's feed lives as long as it does)."""
        self._closed.set()
        self._thread.join()

    def _follow(self) -> None:
        ticked = time.monotonic()
        while not self._closed.is_set():
            if time.monotonic() - ticked >= self.tick_seconds:
                ticked = time.monotonic()
                self._wake_loops()
            lost = False
            try:
                events, position = self.log.read_after(self._position)
            except EventsLost:
                events, position, lost = [], self.log.latest_id(), True
            except OSError:
                events, position = [], self._position
            if events or position != self._position:
                with self._condition:
                    if lost:
                        # What memory holds no longer continues into the log:
                        # streams behind ``position`` go to the log (and are
                        # told to start over).
                        if position < self._position:
                            self._generation += 1
                        self._ids, self._blocks = [], []
                        self._floor = position
                        self._joined = (0, 0, b"")
                    self._ids.extend(event_id for event_id, _ in events)
                    self._blocks.extend(sse_block(event_id, event) for event_id, event in events)
                    if len(self._ids) > 2 * RECENT_EVENTS:
                        drop = len(self._ids) - RECENT_EVENTS
                        self._floor = self._ids[drop - 1]
                        del self._ids[:drop], self._blocks[:drop]
                        self._joined = (0, 0, b"")
                    self._position = position
                    self._condition.notify_all()
                self._wake_loops()
                ticked = time.monotonic()
                self._closed.wait(self.batch_seconds)
            else:
                self._closed.wait(self.poll_seconds)

    def _take(self, position: int, generation: int | None) -> tuple[bytes | None, int] | None:
        """With the condition held: None if nothing came after ``position`` yet,
        else the events after it and the position after them; the events are
        None when memory does not reach back that far (read the log)."""
        if generation is not None and generation != self._generation:
            raise EventsLost("the event log started over")
        if self._position <= position:
            return None
        if position < self._floor:
            return None, position
        start, end = bisect.bisect_right(self._ids, position), len(self._ids)
        cached_start, cached_end, joined = self._joined
        if (cached_start, cached_end) != (start, end):
            joined = b"".join(self._blocks[start:end])
            self._joined = (start, end, joined)
        return joined, self._position

    def _from_log(self, taken: tuple[bytes | None, int]) -> tuple[bytes, int]:
        blocks, position = taken
        if blocks is not None:
            return blocks, position
        events, position = self.log.read_after(position)
        return b"".join(sse_block(event_id, event) for event_id, event in events), position

    def wait(
        self, position: int, timeout: float, *, generation: int | None = None
    ) -> tuple[bytes, int]:
        """The events after ``position`` as SSE bytes (empty if none came within
        ``timeout``), and the position after them. Raises EventsLost when they
        are no longer kept, or when the log started over since ``generation``
        (a value of :attr:`generation`)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while (taken := self._take(position, generation)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b"", position
                self._condition.wait(remaining)
        return self._from_log(taken)

    async def wait_async(
        self, position: int, timeout: float, *, generation: int | None = None
    ) -> tuple[bytes, int]:
        """:meth:`wait` for a coroutine: waits without holding a thread (to
        within ``tick_seconds`` of ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._condition:
                taken = self._take(position, generation)
                if taken is None:
                    changed = self._next_change(loop)
            if taken is not None:
                return self._from_log(taken)
            if loop.time() >= deadline:
                return b"", position
            try:
                # Every stream of the loop awaits this one future.
                await changed
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # Another stream was cancelled while awaiting the shared
                # future, which cancelled it: this one goes on.

    def _next_change(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        """The future of ``loop`` resolved at the next change. Call with the
        condition held."""
        changed = self._loops.get(loop)
        if changed is None or changed.done():
            changed = self._loops[loop] = loop.create_future()
        return changed

    def _wake_loops(self) -> None:
        with self._condition:
            loops = list(self._loops)
        for loop in loops:
            try:
                loop.call_soon_threadsafe(self._wake_loop, loop)
            except RuntimeError:  # the loop was closed
                with self._condition:
                    self._loops.pop(loop, None)

    def _wake_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._condition:
            changed = self._loops.pop(loop, None)
        if changed is not None and not changed.done():
            changed.set_result(None)


@functools.cache
def _feed(log: EventLog | RedisEventLog) -> EventFeed:
    return EventFeed(log)


def feed() -> EventFeed:
    return _feed(backends.event_log())
