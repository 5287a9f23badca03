"""Many open ``GET /api/events`` streams, read by one asyncio loop in a thread.

Each stream is a raw socket speaking HTTP/1.1 (chunked transfer decoding
included). While ``parse`` is on, every ``event: job`` is parsed and its
arrival time recorded; with it off, bytes are read and dropped (cheaper,
for load runs where only the server's throughput matters).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import threading
import time
from dataclasses import dataclass


class ChunkedDecoder:
    """Incremental decoder of an HTTP/1.1 chunked body."""

    def __init__(self) -> None:
        self._buffer = b""
        self._left = 0  # bytes of the current chunk still to come (+2 for its CRLF)

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = []
        while self._buffer:
            if self._left:
                take = self._buffer[: self._left]
                self._buffer = self._buffer[len(take) :]
                self._left -= len(take)
                # The chunk's trailing CRLF is counted in _left but not returned.
                payload = take[: max(0, len(take) - max(0, 2 - self._left))]
                out.append(payload)
                continue
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self._buffer[:line_end].split(b";")[0] or b"0", 16)
            self._buffer = self._buffer[line_end + 2 :]
            self._left = size + 2
        return b"".join(out)


@dataclass
class Arrival:
    job_id: str
    status: str
    created_at: str
    at: float  # time.time() when the event was read
    stream: int


class EventStreams:
    def __init__(self, host: str, port: int, count: int, *, stagger: float = 0.0) -> None:
        self.host, self.port, self.count = host, port, count
        self.stagger = stagger  # seconds between two connects
        self.parse = True
        self.subscribed = 0  # streams whose body began (a server thread is serving them)
        self.failed: list[str] = []
        self.ended = 0  # streams the server closed
        self.received_bytes = 0
        self.arrivals: list[Arrival] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._cpu_seconds = 0.0

    # -- control, from the main thread --------------------------------------------

    def open(self, timeout: float = 60.0) -> float:
        """Open every stream; return the seconds until all were subscribed."""
        started = time.monotonic()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)
        deadline = started + timeout
        while self.subscribed + len(self.failed) < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return time.monotonic() - started

    def close(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(30)

    def cpu_seconds(self) -> float:
        """CPU time the reading thread has used so far."""
        return self._cpu_seconds

    # -- the loop's thread -----------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main(ready))
        finally:
            self._loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        ready.set()
        tasks = []
        for index in range(self.count):
            tasks.append(asyncio.create_task(self._stream(index)))
            if self.stagger:
                await asyncio.sleep(self.stagger)
        meter = asyncio.create_task(self._meter())
        await self._stopping.wait()
        for task in [*tasks, meter]:
            task.cancel()
        await asyncio.gather(*tasks, meter, return_exceptions=True)
        self._cpu_seconds = resource.getrusage(resource.RUSAGE_THREAD).ru_utime + (
            resource.getrusage(resource.RUSAGE_THREAD).ru_stime
        )

    async def _meter(self) -> None:
        while True:
            usage = resource.getrusage(resource.RUSAGE_THREAD)
            self._cpu_seconds = usage.ru_utime + usage.ru_stime
            await asyncio.sleep(0.2)

    async def _stream(self, index: int) -> None:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(
                f"GET /api/events HTTP/1.1\r\nHost: {self.host}\r\n"
                "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                self.failed.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                return
            chunked = b"transfer-encoding: chunked" in head.lower()
            decoder = ChunkedDecoder() if chunked else None
            text = b""
            subscribed = False
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    self.ended += 1
                    return
                now = time.time()
                self.received_bytes += len(data)
                if not self.parse and subscribed:
                    continue
                text += decoder.feed(data) if decoder else data
                while b"\n\n" in text:
                    block, text = text.split(b"\n\n", 1)
                    if not subscribed:
                        subscribed = True
                        self.subscribed += 1
                    self._record(block, now, index)
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.failed.append(f"{type(exc).__name__}: {exc}")
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    def _record(self, block: bytes, now: float, index: int) -> None:
        kind = data = None
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                kind = line[6:].strip()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if kind != b"job" or data is None:
            return
        job = json.loads(data)
        self.arrivals.append(Arrival(job["id"], job["status"], job["created_at"], now, index))
