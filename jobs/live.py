"""Live job events for the event streams of one web process.

One daemon thread per process follows the shared event log (files, or a
Redis Stream: :func:`jobs.backends.event_log`) and keeps the recent events
in memory, each encoded once in the Server-Sent Events format. A stream in
a thread waits for events after its own position on a condition. The
streams of an event loop are written by one coroutine of that loop, its
:class:`Fanout`: at each change it takes the new events once for all the
streams at the same position (nearly always all of them) and hands the
same bytes to each, a few hundred streams per turn of the loop, so that
requests arriving meanwhile are served in between. So a change costs one
read of the log per process and one encoding per event, however many
streams are open; a stream that reconnects with ``Last-Event-ID`` is
served from memory, or from the log when it is further behind (one read
for all the streams resuming from the same event).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from jobs import backends
from storage.events import EventsLost
from storage.protocols import EventLog

logger = logging.getLogger(__name__)


def sse_block(event_id: int, event: dict) -> bytes:
    """One event in the Server-Sent Events format."""
    kind = event.get("type", "job")
    data = event.get("job") if kind == "job" else {"id": event.get("id")}
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {kind}\ndata: {payload}\n\n".encode()


def reset_block(position: int) -> bytes:
    """The event telling a client to start over (refetch the list) from ``position``."""
    return f"id: {position}\nevent: reset\ndata: {{}}\n\n".encode()


# A comment: keeps proxies from closing an idle stream and reveals dead clients.
PING = b": ping\n\n"
RECENT_EVENTS = 5000
# Ranges of events read back from the log for streams further behind than
# memory, kept for the next stream resuming from the same event.
LOG_READS_KEPT = 8
# Streams a fan-out writes in one turn of its event loop, and how long it
# then pauses before the next ones. A write costs the loop about 5 us, and
# granian and the kernel about 15 us more, so a hundred writes take some
# 2 ms of CPU: pausing as long again lets the API's threads and requests
# in between instead of queueing them behind all of an event's writes.
# With 5,000 streams open (bench/streams_flood.py, two cores, medians of
# interleaved runs) the API's p99 was about 110 ms when the fan-out only
# yielded, about 65 ms with the pause. At the cap of 10,000 streams per
# process an event reaches the last stream about half a second after the
# first.
SENDS_PER_TURN = 100
PAUSE_SECONDS = 0.002


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
        # Recent reads of the log for streams behind memory:
        # (generation, position) -> (bytes, position after them).
        self._log_reads: collections.OrderedDict[tuple[int, int], tuple[bytes, int]] = (
            collections.OrderedDict()
        )
        # The fan-out of each event loop with streams, woken at each change.
        self._loops: dict[asyncio.AbstractEventLoop, Fanout] = {}
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
                        self._log_reads.clear()
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
        with self._condition:
            key = (self._generation, position)
            kept = self._log_reads.get(key)
            if kept is not None:
                self._log_reads.move_to_end(key)
                return kept
        events, after = self.log.read_after(position)
        read = b"".join(sse_block(event_id, event) for event_id, event in events), after
        with self._condition:
            if key[0] == self._generation:
                self._log_reads[key] = read
                while len(self._log_reads) > LOG_READS_KEPT:
                    self._log_reads.popitem(last=False)
        return read

    def take(self, position: int, generation: int) -> tuple[bytes, int] | None:
        """The events after ``position`` as SSE bytes and the position after
        them, or None if none came yet; without waiting. Raises EventsLost
        like :meth:`wait`."""
        with self._condition:
            taken = self._take(position, generation)
        return None if taken is None else self._from_log(taken)

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

    def fanout(self) -> Fanout:
        """The fan-out of the running event loop (made at its first stream)."""
        loop = asyncio.get_running_loop()
        with self._condition:
            fanout = self._loops.get(loop)
            if fanout is None:
                fanout = self._loops[loop] = Fanout(self, loop)
            return fanout

    def _wake_loops(self) -> None:
        with self._condition:
            fanouts = list(self._loops.items())
        for loop, fanout in fanouts:
            if not fanout:
                continue  # no stream open on that loop
            try:
                loop.call_soon_threadsafe(fanout.wake)
            except RuntimeError:  # the loop was closed
                with self._condition:
                    self._loops.pop(loop, None)


class Subscriber(Protocol):
    """What a :class:`Fanout` needs of a stream (see jobs.api.events)."""

    # Where it is in the log (the fan-out moves it on).
    position: int
    generation: int
    # When it was last written to; a heartbeat is due ``heartbeat`` seconds after.
    last_sent: float
    heartbeat: float
    # When it ends (time.monotonic()).
    end: float
    closed: bool
    # Writes to the client. Must not wait for the client to read (granian's
    # send_bytes only queues); raises when the client is gone.
    write: Callable[[bytes], Awaitable[object]]

    def finish(self) -> None:
        """It ended (its time is up or its client went away): stop its response."""


class Fanout:
    """The event streams of one event loop, written by one coroutine.

    The streams are grouped by their position in the log; at each change
    each group's new events are taken from the feed once (joined once, or
    read from the log once) and the same bytes are written to every stream
    of the group. Every ``SENDS_PER_TURN`` writes it pauses for
    ``PAUSE_SECONDS``, so a request that arrives during the fan-out waits
    for a hundred writes, not for thousands, and one event's writes do not
    take the machine's CPU all at once. Once a tick it sends heartbeats to
    the streams that had nothing for ``heartbeat`` seconds and ends those
    whose time is up.
    """

    def __init__(self, source: EventFeed, loop: asyncio.AbstractEventLoop) -> None:
        self.source = source
        self.loop = loop
        self._at: dict[tuple[int, int], set[Subscriber]] = {}
        self._count = 0
        self._task: asyncio.Task | None = None
        self._waiter: asyncio.Future | None = None
        self._woken = False
        self._ticked = time.monotonic()

    def __len__(self) -> int:
        return self._count

    def add(self, stream: Subscriber) -> None:
        """Write ``stream`` from now on, from its position (it may be behind)."""
        stream.last_sent = time.monotonic()
        self._at.setdefault((stream.generation, stream.position), set()).add(stream)
        self._count += 1
        self.wake()
        if self._task is None:
            self._task = self.loop.create_task(self._run())

    def discard(self, stream: Subscriber) -> None:
        key = (stream.generation, stream.position)
        members = self._at.get(key)
        if members is not None and stream in members:
            members.discard(stream)
            self._count -= 1
            if not members:
                del self._at[key]
            if not self._count:
                self.wake()  # so that its coroutine ends

    def wake(self) -> None:
        """Something changed (or a tick passed): look at the streams again."""
        self._woken = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _run(self) -> None:
        try:
            while self._count:
                if not self._woken:
                    self._waiter = self.loop.create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
                self._woken = False
                try:
                    await self._deliver()
                    now = time.monotonic()
                    if now - self._ticked >= self.source.tick_seconds:
                        self._ticked = now
                        await self._tend(now)
                except Exception:
                    # The streams of this loop depend on this coroutine: it
                    # goes on (and tries again at the next wake).
                    logger.exception("Could not write to the event streams")
        finally:
            self._task = None

    async def _deliver(self) -> None:
        written = 0
        for key in list(self._at):
            generation, position = key
            if not self._at.get(key):
                continue
            try:
                taken = self.source.take(position, generation)
            except EventsLost:
                # Behind what is kept, or the log started over: the group
                # starts over from now, told so by one encoded reset.
                moved_to = (self.source.generation, self.source.position)
                chunk = reset_block(moved_to[1])
            except OSError:
                continue  # the log cannot be read now: again at the next wake
            else:
                if taken is None:
                    continue
                chunk, moved_to = taken[0], (generation, taken[1])
            members = self._at.pop(key, set())
            for stream in members:
                stream.generation, stream.position = moved_to
            self._at.setdefault(moved_to, set()).update(members)
            now = time.monotonic()
            for stream in list(members):
                if stream.closed:
                    continue
                try:
                    await stream.write(chunk)
                except Exception:
                    stream.finish()  # the client went away
                else:
                    stream.last_sent = now
                written += 1
                if written % SENDS_PER_TURN == 0:
                    await asyncio.sleep(PAUSE_SECONDS)
                    now = time.monotonic()

    async def _tend(self, now: float) -> None:
        written = 0
        for stream in [stream for members in self._at.values() for stream in members]:
            if stream.closed:
                continue
            if now >= stream.end:
                stream.finish()
            elif now - stream.last_sent >= stream.heartbeat:
                try:
                    await stream.write(PING)
                except Exception:
                    stream.finish()
                else:
                    stream.last_sent = now
                written += 1
                if written % SENDS_PER_TURN == 0:
                    await asyncio.sleep(PAUSE_SECONDS)


@functools.cache
def _feed(log: EventLog) -> EventFeed:
    return EventFeed(log)


def feed() -> EventFeed:
    return _feed(backends.event_log())
