"""An append-only log of change events, shared by every process through files.

:class:`FileEventLog` keeps the contract of :class:`storage.protocols.EventLog`.

On-disk format: ``events/<segment>.log`` (segment: 8 decimal digits), one
JSON document per line. The id of an event is ``segment * 2**32 + offset``
where ``offset`` is the byte position where its line ends, so ids increase in the
order the lines were appended, across all writers, without any counter or
lock: each ``write()`` on an ``O_APPEND`` descriptor lands whole at the end
of the file. ``offset`` is the position just after the line, so an event's
id is also the position to read on from to get the events after it (what a
client sends back as ``Last-Event-ID``).

A segment is closed once it grows past ``segment_bytes``; writers then
append to the next one, and only the newest ``keep_segments`` are kept. A
reader asking for events after an id whose segment is gone is told to
start over (it has missed events), and so is one asking after an id the
log never reached (the data directory was reset or restored since).

Events are notifications, not state: the job files are the truth. So the
log is not fsynced; after a power cut a client refetches the list.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from filestore import atomic
from storage.events import EventsLost

SEGMENT_SPAN = 1 << 32
_READ_SIZE = 1 << 20


class FileEventLog:
    def __init__(
        self, root: Path, *, segment_bytes: int = 8 * 1024 * 1024, keep_segments: int = 3
    ) -> None:
        self.root = Path(root)
        self.segment_bytes = segment_bytes
        self.keep_segments = keep_segments
        # The descriptor appends go to, kept open between appends: (pid, fd).
        # Another process's rotation is noticed by size: a segment is only
        # left once it is full, and a full one is never written again.
        self._writer: tuple[int, int] | None = None
        self._writer_lock = threading.Lock()

    def _segments(self) -> list[int]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(
            int(name[:-4]) for name in names if name.endswith(".log") and name[:-4].isdigit()
        )

    def _path(self, segment: int) -> Path:
        return self.root / f"{segment:08d}.log"

    def append(self, event: dict[str, Any]) -> None:
        self._write(atomic.dumps(event) + b"\n")

    def append_many(self, events: list[dict[str, Any]]) -> None:
        """Append ``events`` with one write (a batch of jobs changed together).

        One ``O_APPEND`` write lands whole and in order; a reader that gets
        there while it is under way sees whole lines and, at worst, a last
        line without its newline, which it leaves for its next read.
        """
        if events:
            self._write(b"".join(atomic.dumps(event) + b"\n" for event in events))

    def _write(self, lines: bytes) -> None:
        with self._writer_lock:
            writer = self._writer
            status = os.fstat(writer[1]) if writer is not None else None
            if (
                writer is None
                or writer[0] != os.getpid()  # inherited over a fork: open our own
                or status.st_size >= self.segment_bytes
                # The file was removed (the data directory was reset): appends
                # to it would reach nobody.
                or status.st_nlink == 0
            ):
                if writer is not None and writer[0] == os.getpid():
                    os.close(writer[1])
                self._writer = writer = (os.getpid(), self._open_newest())
            os.write(writer[1], lines)

    def _open_newest(self) -> int:
        """A descriptor appending to the newest segment, starting a new one when full."""
        segments = self._segments()
        if not segments:
            atomic.ensure_dir(self.root)
            segments = [1]
        segment = segments[-1]
        path = self._path(segment)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size >= self.segment_bytes:
            segment += 1
            path = self._path(segment)
            for old in segments[: max(0, len(segments) + 1 - self.keep_segments)]:
                with contextlib.suppress(FileNotFoundError):
                    self._path(old).unlink()
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def latest_id(self) -> int:
        """The id just past the newest event: reading after it yields only new events."""
        segments = self._segments()
        if not segments:
            return 0
        segment = segments[-1]
        try:
            size = self._path(segment).stat().st_size
        except FileNotFoundError:
            size = 0
        return segment * SEGMENT_SPAN + size

    def read_after(self, position: int, *, limit: int = 1000) -> tuple[list[tuple[int, dict]], int]:
        """Events from ``position`` on, and the position to continue from.

        ``position`` is a value returned earlier by this method, by
        :meth:`latest_id`, or an event id (then the events after that one).
        """
        segment, offset = divmod(position, SEGMENT_SPAN)
        segments = self._segments()
        if not segments:
            return [], position
        if segment < segments[0]:
            if position == 0:
                segment, offset = segments[0], 0
            else:
                raise EventsLost(f"events after {position} are no longer kept")
        if segment > segments[-1]:
            raise EventsLost(f"the log never reached {position}: it started over")
        events: list[tuple[int, dict]] = []
        first = True
        while len(events) < limit:
            try:
                with open(self._path(segment), "rb") as handle:
                    # Ids are handed out only once their line is in the log,
                    # which only grows: a position past the end of its
                    # segment comes from a log that was since reset.
                    if first and os.fstat(handle.fileno()).st_size < offset:
                        raise EventsLost(f"the log never reached {position}: it started over")
                    handle.seek(offset)
                    data = handle.read(_READ_SIZE)
            except FileNotFoundError:
                data = b""
            first = False
            consumed = 0
            for line in data.splitlines(keepends=True):
                if not line.endswith(b"\n") or len(events) >= limit:
                    break  # a line still being written, or enough for now
                consumed += len(line)
                event_id = segment * SEGMENT_SPAN + offset + consumed
                try:
                    events.append((event_id, atomic.loads(line)))
                except ValueError:
                    continue
            offset += consumed
            if len(events) >= limit or consumed < len(data):
                break
            if len(data) == _READ_SIZE:
                continue  # more of this segment to read
            newer = [s for s in segments if s > segment]
            if not newer:
                break
            segment, offset = newer[0], 0
        return events, segment * SEGMENT_SPAN + offset
