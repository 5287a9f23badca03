"""7. Sustained load: jobs arriving at a constant rate, created and run at the same time.

For each rate of a list, each system is started fresh on its own empty
directory and gets ``POST`` requests at fixed, precomputed instants
(``i / rate`` seconds after the start) for ``duration`` seconds, every job
due 5 s after it was created:

- the product as ``make run`` starts it (``manage.py serve``: web and
  worker), each ``POST /api/jobs`` with ``{"delay_seconds": 5}``, the
  worker fetching photos from the fake Unsplash of ``tests/fake_unsplash.py``
  (``UNSPLASH_ACCESS_KEY`` set, ``UNSPLASH_API_URL`` pointing at it). The
  per-client create throttle is turned off: the stream stands for many
  clients, and every request here comes from one loopback address;
- the yardstick (``reference-server.mjs``) with ``JOB_DELAY=5`` and a
  fake Unsplash of the same kind, which it calls once per job.

Each run has a fake Unsplash of its own, started with it and stopped after
it, so no run inherits calls another left queued.

The client is open loop (:class:`Arrivals`): a request is sent at its
instant whether or not earlier ones were answered, on a free keep-alive
connection or a new one, so arrivals do not slow down when the server
does. Only when ``max_connections`` are all busy does a request wait in
the client; it is then sent late, and its create latency, measured from
the instant it was due to be sent, shows it.

Per job: the instant its ``2xx`` arrived (the acknowledgement) and its id.
After the last job was due, the data directory is watched until every job
has a final state (or ``drain_timeout`` passes); then every job file is
read for its finish time: ``finished_at`` and the history for the
product, ``timestamp`` for the yardstick. Lateness = finish - (ack +
delay). CPU is read from ``/proc`` for the web and the worker process
trees (with the time of children that exited); flushes (``fsync``,
``fdatasync``, ``syncfs``: the product's group commit flushes with
``syncfs``) are counted by ``perf stat`` on the syscall tracepoints of the
same trees, for a window in the middle of the arrivals (skipped when
``perf`` cannot run). Counting is not free: with ``perf`` attached the
web's CPU per create was 0.05-0.07 ms higher (two alternated pairs of
product-only runs at 1,000 jobs/s), a tenth of the figure. So the calls
per job are counted over the window alone, divided by the jobs of the
window (creates acknowledged in it for the web and the yardstick, jobs
due in it for the worker), and the CPU per job is read over the rest of
the run, divided by the rest of the jobs (:func:`per_job_outside`).

A rate is *held* when at least 99.9 % of the creates were answered
``2xx``, create latency p99 <= 1 s, lateness p99 <= 1 s, and every
acknowledged job reached a final state in time, none lost and none run
twice.

``python -m bench.sustained fake-unsplash --port N`` serves the fake
Unsplash in a process of its own (so that its CPU is neither the client's
nor the system's), with a listen backlog and keep-alive fit for
thousands of calls a second.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.processes import (
    CLOCK_TICKS,
    PYTHON,
    Server,
    children_of,
    free_port,
    pid_alive,
    process_tree,
    running,
    start,
    wait_for,
    wait_http,
)
from bench.profiles import Profile
from bench.report import Section, verdict
from bench.systems import (
    Scratch,
    file_create_probe,
    flush_pending_writes,
    product_env,
    start_serve,
    start_yardstick,
)
from bench.timing import fake_unsplash_class, percentile
from jobsite.machine_load import MachineLoad

DELAY_SECONDS = 5
# The delays of the product's mixed run, one per request in turn. With one
# delay for all, the jobs due together were created together (in one
# second's directory of the store). In real use delays differ (5 s to
# 5 min in 5 s steps), and the jobs due in one second were created in up to
# sixty different seconds. A 20 s stream can show that only with delays a
# second apart: the run sets JOBS_DELAY_STEP=1, so that twenty seconds of
# creates lie behind each due second. The yardstick takes one delay for
# all its jobs (or random ones up to 5 min): it has no such run.
MIXED_DELAYS = tuple(range(5, 25))
MIXED_DELAY_STEP = 1
# Server CPU per create (web) and per job run (worker): the budget per job.
CPU_BUDGET_MS = 0.5
# Creating a file costs far more CPU for minutes after many files were
# deleted on the same file system (ext4 without a journal passes over every
# recently freed inode): each run waits, up to a limit, until creating one
# costs less than this, so that runs start alike and the systems are not
# charged for another run's clean-up.
QUIET_CREATE_US = 100.0
HELD_P99_SECONDS = 1.0
HELD_CREATE_P99_SECONDS = 1.0
HELD_ANSWERED_SHARE = 0.999
GOAL_RATE = 1000  # jobs/s the product should hold on two cores
LATE_SEND_SECONDS = 0.05
WARMUP_RATE, WARMUP_SECONDS = 40, 0.5
# The fake answers at once (its default): lateness is the systems' own.
UNSPLASH_LATENCY_MS = 0
FINAL_PRODUCT = ("completed", "failed", "cancelled")
FINAL_YARDSTICK = ("completed", "error")
# Every system call that makes written data durable (the product's group
# commit flushes with syncfs).
FLUSH_CALLS = ("fsync", "fdatasync", "syncfs", "sync", "sync_file_range")
FLUSH_EVENTS = ",".join(f"syscalls:sys_enter_{call}" for call in FLUSH_CALLS)
# The calls on names and files (not read and write, which sockets share):
# what a job costs the file system, besides its flushes.
FILE_CALLS = (
    "open",
    "openat",
    "newfstatat",
    "statx",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "unlink",
    "unlinkat",
    "mkdir",
    "mkdirat",
    "rmdir",
    "getdents64",
    "flock",
    "ftruncate",
)
FILE_EVENTS = ",".join(f"syscalls:sys_enter_{call}" for call in FILE_CALLS)
ALL_CALLS_EVENT = "raw_syscalls:sys_enter"


@dataclass(frozen=True)
class Options:
    rates: tuple[int, ...]
    duration: float  # seconds of arrivals per rate
    drain_timeout: float  # seconds to wait for final states after the last job was due
    max_connections: int = 512
    request_timeout: float = 10.0
    quiet_wait: float = 240.0  # seconds a run may wait for a quiet file system
    mixed_rate: int = 0  # jobs/s of the product's run with MIXED_DELAYS (0: none)
    mixed_delays: tuple[int, ...] = MIXED_DELAYS


FULL_OPTIONS = Options(
    rates=(300, 600, 1000, 1500, 2000, 3000), duration=20, drain_timeout=30, mixed_rate=GOAL_RATE
)
SMOKE_OPTIONS = Options(
    rates=(20,), duration=2, drain_timeout=20, quiet_wait=0, mixed_rate=20, mixed_delays=(5, 6, 7)
)


def options_for(
    profile: Profile,
    *,
    rates: str | None = None,
    duration: float | None = None,
    mixed_rate: int | None = None,
) -> Options:
    """The profile's options, with ``--rates``/``--duration``/``--mixed-rate`` (or their
    env) applied."""
    base = SMOKE_OPTIONS if profile.name == "smoke" else FULL_OPTIONS
    rates = rates or os.environ.get("BENCH_SUSTAINED_RATES")
    if duration is None and os.environ.get("BENCH_SUSTAINED_SECONDS"):
        duration = float(os.environ["BENCH_SUSTAINED_SECONDS"])
    if mixed_rate is None and os.environ.get("BENCH_SUSTAINED_MIXED_RATE"):
        mixed_rate = int(os.environ["BENCH_SUSTAINED_MIXED_RATE"])
    if mixed_rate is not None and mixed_rate < 0:
        raise ValueError(f"the mixed run's rate must be 0 (none) or positive, not {mixed_rate}")
    chosen = base.rates
    if rates:
        chosen = tuple(int(part) for part in rates.split(",") if part.strip())
        if not chosen or min(chosen) <= 0:
            raise ValueError(f"rates must be positive integers, not {rates!r}")
    return Options(
        rates=chosen,
        duration=duration if duration is not None else base.duration,
        drain_timeout=base.drain_timeout,
        max_connections=base.max_connections,
        request_timeout=base.request_timeout,
        mixed_rate=base.mixed_rate if mixed_rate is None else mixed_rate,
        mixed_delays=base.mixed_delays,
    )


# --- the open-loop client ---------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, client: Arrivals) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.request: int | None = None  # index of the request in flight
        self.buffer = bytearray()
        self.closed = False
        self.refused = False  # the connection could not be opened

    def connection_made(self, transport) -> None:
        self.transport = transport  # asyncio has set TCP_NODELAY
        if self.request is not None:
            transport.write(self.client.request_for(self.request))
            self.client.sent[self.request] = self.client.loop.time()
        else:
            self.client.ready(self)

    def send(self, index: int) -> None:
        self.request = index
        self.buffer.clear()
        self.transport.write(self.client.request_for(index))
        self.client.sent[index] = self.client.loop.time()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        raw_head = bytes(self.buffer[:end])
        head = raw_head.lower()
        start = end + 4
        length_at = head.find(b"\r\ncontent-length:")
        if length_at >= 0:
            value_end = head.find(b"\r\n", length_at + 2)
            length = int(head[length_at + 17 : value_end if value_end >= 0 else None])
            if len(self.buffer) - start < length:
                return
            body = bytes(self.buffer[start : start + length])
        elif b"transfer-encoding: chunked" in head:
            if not self.buffer.endswith(b"0\r\n\r\n"):
                return
            body = _dechunk(bytes(self.buffer[start:]))
        else:  # no length: the body ends with the connection
            return
        index, self.request = self.request, None
        self.buffer.clear()
        if index is not None:
            self.client.answered(index, int(head[9:12]), raw_head, body)
        if b"\r\nconnection: close" in head:
            self.close()
        else:
            self.client.ready(self)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.client.lost(self)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()


def _dechunk(data: bytes) -> bytes:
    body, at = bytearray(), 0
    while True:
        line_end = data.find(b"\r\n", at)
        size = int(data[at:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(body)
        body += data[line_end + 2 : line_end + 2 + size]
        at = line_end + 2 + size + 2


class Arrivals:
    """Send ``count`` requests at ``i / rate`` s after the start, without waiting for answers.

    Idle connections are reused newest first (those idle longest may have
    been closed by the server's keep-alive timeout). When none is idle a
    new one is opened, up to ``max_connections``; beyond that the request
    waits in the client and goes out late.
    """

    def __init__(
        self,
        port: int,
        requests: Sequence[bytes],
        job_id: Callable[[bytes, bytes], str | None],
        *,
        rate: float,
        duration: float,
        max_connections: int,
        request_timeout: float,
    ) -> None:
        self.port = port
        if isinstance(requests, bytes | bytearray):
            raise TypeError("requests: a sequence of requests, not one")
        self.requests = list(requests)  # sent in turn: request i is requests[i % len]
        self.job_id = job_id
        self.count = max(1, round(rate * duration))
        self.interval = 1.0 / rate
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.sent: list[float | None] = [None] * self.count
        self.acked: list[float | None] = [None] * self.count
        self.status: list[int | str | None] = [None] * self.count
        self.ids: list[str | None] = [None] * self.count
        self.connections: set[_Connection] = set()
        self.idle: list[_Connection] = []
        self.waiting: collections.deque[int] = collections.deque()
        self.opened = 0
        self.peak_connections = 0
        self.open_failures = 0
        self.resolved = 0
        self.start = 0.0
        self.wall_offset = 0.0
        self.loop: asyncio.AbstractEventLoop

    # -- what connections report ------------------------------------------

    def ready(self, connection: _Connection) -> None:
        if self.waiting:
            connection.send(self.waiting.popleft())
        else:
            self.idle.append(connection)

    def answered(self, index: int, status: int, head: bytes, body: bytes) -> None:
        if self.status[index] is not None:
            return
        self.acked[index] = self.loop.time()
        self.status[index] = status
        if 200 <= status < 300:
            self.ids[index] = self.job_id(head, body)
        self.resolved += 1

    def lost(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)
        if connection.request is not None:
            self._fail(connection.request, "refused" if connection.refused else "reset")
            connection.request = None
        if self.waiting and len(self.connections) < self.max_connections:
            self._open(self.waiting.popleft())

    # -- sending ------------------------------------------------------------

    def _fail(self, index: int, why: str) -> None:
        if self.status[index] is None:
            self.status[index] = why
            self.resolved += 1

    def _dispatch(self, index: int) -> None:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                connection.send(index)
                return
        if len(self.connections) < self.max_connections:
            self._open(index)
        else:
            self.waiting.append(index)

    def _open(self, index: int | None) -> None:
        connection = _Connection(self)
        connection.request = index
        self.connections.add(connection)
        self.opened += 1
        self.peak_connections = max(self.peak_connections, len(self.connections))
        task = self.loop.create_task(
            self.loop.create_connection(lambda: connection, "127.0.0.1", self.port)
        )

        def done(task: asyncio.Task) -> None:
            if task.cancelled() or task.exception() is not None:
                self.open_failures += 1
                connection.closed = connection.refused = True
                self.lost(connection)

        task.add_done_callback(done)

    async def _pace(self) -> None:
        index = 0
        while index < self.count:
            now = self.loop.time()
            while index < self.count and self.start + index * self.interval <= now:
                self._dispatch(index)
                index += 1
            if index < self.count:
                await asyncio.sleep(max(0.0, self.start + index * self.interval - self.loop.time()))

    async def _watch_timeouts(self) -> None:
        while self.resolved < self.count:
            await asyncio.sleep(0.25)
            now = self.loop.time()
            limit = now - self.request_timeout
            for connection in list(self.connections):
                index = connection.request
                if index is not None and (self.sent[index] or now) < limit:
                    self._fail(index, "timeout")
                    connection.request = None
                    connection.close()
            while self.waiting and self.start + self.waiting[0] * self.interval < limit:
                self._fail(self.waiting.popleft(), "not sent")

    async def run(self, *, warm_connections: int = 16) -> None:
        self.loop = asyncio.get_running_loop()
        for _ in range(min(warm_connections, self.max_connections)):
            self._open(None)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while len(self.idle) < min(warm_connections, self.max_connections):
                    await asyncio.sleep(0.01)
        self.start = self.loop.time() + 0.05
        self.wall_offset = time.time() - self.loop.time()
        watcher = self.loop.create_task(self._watch_timeouts())
        await self._pace()
        await watcher
        for connection in list(self.connections):
            connection.close()
        await asyncio.sleep(0)

    # -- results ------------------------------------------------------------

    def request_for(self, index: int) -> bytes:
        return self.requests[index % len(self.requests)]

    def wall(self, loop_time: float) -> float:
        return loop_time + self.wall_offset

    def due_to_send(self, index: int) -> float:
        return self.start + index * self.interval


# --- the systems ------------------------------------------------------------


@dataclass
class Outcome:
    """One job as found in the system's files after the run."""

    status: str
    finished: float | None  # epoch seconds
    completions: int = 1  # final events in its history (product)
    names: int = 1  # files with its id


@dataclass
class RunningSystem:
    name: str
    port: int
    requests: list[bytes]  # sent in turn, each creating a job due after its delay
    delays: tuple[int, ...]  # the delay of each of ``requests``, in seconds
    job_id: Callable[[bytes, bytes], str | None]
    trees: dict[str, int]  # role -> root pid of its process tree
    servers: list[Server]
    data_dir: Path
    warmup_bytes: bytes
    unfinished: Callable[[set[str]], int]
    outcomes: Callable[[], dict[str, Outcome]]
    extra: dict = field(default_factory=dict)


def _request(path: str, port: int, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _product_job_id(head: bytes, body: bytes) -> str | None:
    """The id from the ``Location`` header (cheaper than parsing the body)."""
    at = head.lower().find(b"\r\nlocation:")
    if at >= 0:
        end = head.find(b"\r\n", at + 2)
        location = head[at + 11 : end if end >= 0 else None].strip()
        return location.rstrip(b"/").rsplit(b"/", 1)[-1].decode()
    return json.loads(body).get("id")


def _yardstick_job_id(head: bytes, body: bytes) -> str | None:
    return json.loads(body).get("jobId")


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value).timestamp()


def _split(name: str) -> tuple[str, str] | None:
    if not name.endswith(".json") or "_" not in name:
        return None
    job_id, status = name[:-5].rsplit("_", 1)
    return job_id, status


def _product_names(data_dir: Path) -> list[tuple[str, str, str]]:
    found = []
    for folder, _, names in os.walk(data_dir / "jobs"):
        for name in names:
            parts = _split(name)
            if parts:
                found.append((*parts, os.path.join(folder, name)))
    return found


def _product_unfinished(data_dir: Path, ignore: set[str]) -> int:
    return sum(
        1
        for job_id, status, _ in _product_names(data_dir)
        if status not in FINAL_PRODUCT and job_id not in ignore
    )


def _product_outcomes(data_dir: Path) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for job_id, status, path in _product_names(data_dir):
        try:
            with open(path, "rb") as handle:
                document = json.load(handle)
        except (OSError, ValueError):
            continue
        history = document.get("history") or ()
        outcome = Outcome(
            status=document.get("status", status),
            finished=_epoch(document.get("finished_at")),
            completions=sum(1 for item in history if item.get("event") in FINAL_PRODUCT),
        )
        previous = outcomes.get(job_id)
        if previous is not None:
            # Two names for one job: the final one counts, and the pair is reported.
            keep = previous if previous.status in FINAL_PRODUCT else outcome
            outcome = dataclasses.replace(keep, names=previous.names + 1)
        outcomes[job_id] = outcome
    return outcomes


def _yardstick_unfinished(data_dir: Path, ignore: set[str]) -> int:
    suffix = "_pending.json"
    return sum(
        1
        for name in os.listdir(data_dir)
        if name.endswith(suffix) and name[: -len(suffix)] not in ignore
    )


def _yardstick_outcomes(data_dir: Path) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for name in os.listdir(data_dir):
        parts = _split(name)
        if not parts:
            continue
        job_id, status = parts
        finished = None
        if status in FINAL_YARDSTICK:
            # The yardstick renames the file first and writes the result into
            # it after: a final name with older content (the server stopped in
            # between) is a job that did not finish.
            try:
                document = json.loads((data_dir / name).read_text())
            except (OSError, ValueError):
                document = {}
            if document.get("status") == status and "timestamp" in document:
                finished = document["timestamp"] / 1000
        if job_id in outcomes:
            outcomes[job_id].names += 1
            continue
        outcomes[job_id] = Outcome(status=status, finished=finished)
    return outcomes


@contextlib.contextmanager
def _product(
    scratch: Scratch,
    fake_url: str,
    delays: tuple[int, ...] = (DELAY_SECONDS,),
    delay_step: int | None = None,
):
    env = product_env(
        scratch.data,
        UNSPLASH_ACCESS_KEY="bench",
        UNSPLASH_API_URL=fake_url,
        JOBS_THROTTLE_CREATE_RATE="0",
    )
    if delay_step is not None:
        env["JOBS_DELAY_STEP"] = str(delay_step)
    serve = start_serve(scratch, env)
    with running(serve):
        wait_http(serve, "/api/health", want=(200,), timeout=90)
        roles: dict[str, int] = {}

        def found_both() -> bool:
            for pid, command in children_of(serve.pid).items():
                if "granian" in command:
                    roles["web"] = pid
                elif "qcluster" in command:
                    roles["worker"] = pid
            return len(roles) == 2

        wait_for(found_both, timeout=20, what="the web and worker processes of serve")
        bodies = [json.dumps({"delay_seconds": delay}).encode() for delay in delays]
        yield RunningSystem(
            name="product",
            port=serve.port,
            requests=[_request("/api/jobs", serve.port, body) for body in bodies],
            delays=delays,
            job_id=_product_job_id,
            trees=roles,
            servers=[serve],
            data_dir=scratch.data,
            # Warm-up creates are due long after the run ends.
            warmup_bytes=_request("/api/jobs", serve.port, b'{"delay_seconds": 300}'),
            unfinished=lambda ignore: _product_unfinished(scratch.data, ignore),
            outcomes=lambda: _product_outcomes(scratch.data),
        )


@contextlib.contextmanager
def _yardstick(scratch: Scratch, fake_url: str):
    node = start_yardstick(scratch, delay=DELAY_SECONDS, unsplash_url=fake_url)
    with running(node):
        wait_http(node, "/jobs?page=1&perPage=1")
        yield RunningSystem(
            name="yardstick",
            port=node.port,
            requests=[_request("/jobs", node.port, b"{}")],
            delays=(DELAY_SECONDS,),
            job_id=_yardstick_job_id,
            trees={"web": node.pid},
            servers=[node],
            data_dir=scratch.data,
            warmup_bytes=_request("/jobs", node.port, b"{}"),
            unfinished=lambda ignore: _yardstick_unfinished(scratch.data, ignore),
            outcomes=lambda: _yardstick_outcomes(scratch.data),
        )


# --- /proc and perf ---------------------------------------------------------


def tree_cpu_seconds(root: int) -> float:
    """CPU (user + system) of ``root``'s process tree, with the children that exited.

    A process that ends during the run (django-q2 recycles its workers)
    leaves its time in its parent's ``cutime``/``cstime`` once reaped.
    """
    ticks = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def perf_usable() -> bool:
    if shutil.which("perf") is None:
        return False
    done = subprocess.run(
        ["perf", "stat", "-e", _perf_events(), "-x,", "--", "true"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


def _perf_events() -> str:
    return ",".join((FLUSH_EVENTS, FILE_EVENTS, ALL_CALLS_EVENT))


class FlushCount:
    """``perf stat`` counting the system calls of a process tree (and of its new children):
    the flushes, the calls on files, and all of them, while turned on (:meth:`resume`)."""

    def __init__(self, name: str, root: int, log_dir: Path) -> None:
        self.output = log_dir / f"{name}.perf.csv"
        pids = ",".join(str(pid) for pid in process_tree(root))
        # Attached with its counters off, until resume(): perf's control
        # fifos, each opened read-write so that neither open blocks.
        fifos = (log_dir / f"{name}.ctl", log_dir / f"{name}.ack")
        for fifo in fifos:
            with contextlib.suppress(FileNotFoundError):
                fifo.unlink()
            os.mkfifo(fifo, 0o600)
        self._control: tuple[int, int] | None = (
            os.open(fifos[0], os.O_RDWR),
            os.open(fifos[1], os.O_RDWR),
        )
        command = ["perf", "stat", "-e", _perf_events(), "-x,", "-o", str(self.output)]
        command += ["-D", "-1", f"--control=fifo:{fifos[0]},{fifos[1]}", "-p", pids]
        self.server = start(name, command, env=dict(os.environ), log_dir=log_dir)

    def resume(self) -> bool:
        """Turn the counters on; whether perf said it did."""
        return self._tell("enable")

    def pause(self) -> bool:
        """Turn the counters off; whether perf said it did."""
        return self._tell("disable")

    def _tell(self, command: str, timeout: float = 10.0) -> bool:
        if self._control is None:
            return False
        control, ack = self._control
        os.write(control, f"{command}\n".encode())
        ready, _, _ = select.select([ack], [], [], timeout)
        return bool(ready) and os.read(ack, 64).startswith(b"ack")

    def stop(self) -> dict[str, int] | None:
        """Calls per system call, or None when perf counted nothing."""
        if self._control is not None:
            for fd in self._control:
                os.close(fd)
            self._control = None
        process = self.server.process
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(15)
        self.server.stop()
        counts = {}
        with contextlib.suppress(OSError):
            for line in self.output.read_text().splitlines():
                fields = line.split(",")
                if len(fields) > 2 and fields[2].startswith("syscalls:sys_enter_"):
                    with contextlib.suppress(ValueError):
                        counts[fields[2].removeprefix("syscalls:sys_enter_")] = int(fields[0])
                elif len(fields) > 2 and fields[2] == ALL_CALLS_EVENT:
                    with contextlib.suppress(ValueError):
                        counts["all"] = int(fields[0])
        return counts or None


# --- one run ----------------------------------------------------------------


def _stats_ms(values: list[float]) -> dict:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(1000 * percentile(values, 0.50), 1),
        "p99_ms": round(1000 * percentile(values, 0.99), 1),
        "max_ms": round(1000 * max(values), 1),
    }


def _warm_up(system: RunningSystem, options: Options) -> set[str]:
    """A few creates before the measured ones (first requests pay for lazy imports and JITs)."""
    client = Arrivals(
        system.port,
        [system.warmup_bytes],
        system.job_id,
        rate=WARMUP_RATE,
        duration=WARMUP_SECONDS,
        max_connections=options.max_connections,
        request_timeout=options.request_timeout,
    )
    asyncio.run(client.run())
    return {job_id for job_id in client.ids if job_id is not None}


@dataclass
class Observed:
    """What one run saw while the system was up (its files are read after it stopped)."""

    client: Arrivals
    warm: set[str]  # warm-up jobs, left out of every figure
    due: dict[str, float]  # acknowledged job id -> when it was due (epoch seconds)
    observed_until: float
    cpu: dict[str, float | None]  # each tree's CPU seconds over the run and its drain
    window: PerfWindow | None  # perf's window, with the calls it counted
    client_cpu: float
    fake_cpu: float
    busy_before: float | None
    exited: dict[str, str]  # role -> how its process ended, if it did during the run


def machine_busy(seconds: float = 1.0) -> float | None:
    """The share of the machine's processor time in use over the next ``seconds``
    (:class:`jobsite.machine_load.MachineLoad`, as admission reads it); None without it.

    What the run starts on. The load average is no measure of it: it
    decays over minutes, and read 3,033 at the start of a run on an idle
    machine, after the yardstick's run at 3,000 jobs/s had kept thousands
    of threads of the fake Unsplash runnable.
    """
    load = MachineLoad()
    load.read()
    time.sleep(seconds)
    return load.read()


def _drive(system: RunningSystem, rate: int, options: Options, fake: Server, use_perf: bool):
    """Send the arrivals, then wait until every job is final or the drain timeout passes."""
    busy_before = machine_busy()
    warm = _warm_up(system, options)
    client = Arrivals(
        system.port,
        system.requests,
        system.job_id,
        rate=rate,
        duration=options.duration,
        max_connections=options.max_connections,
        request_timeout=options.request_timeout,
    )
    window = (
        PerfWindow(
            system.trees,
            system.data_dir.parent,
            start_in=PERF_WINDOW_START * options.duration,
            seconds=PERF_WINDOW_SHARE * options.duration,
        )
        if use_perf
        else None
    )
    try:
        cpu_before = {role: tree_cpu_seconds(root) for role, root in system.trees.items()}
        fake_before = tree_cpu_seconds(fake.pid)
        client_before = time.process_time()
        if window is not None:
            window.start()
        asyncio.run(client.run())
        client_cpu = time.process_time() - client_before
        if window is not None:
            window.finish()
        acked = [i for i in range(client.count) if client.ids[i] is not None]
        delays = system.delays
        due = {client.ids[i]: client.wall(client.acked[i]) + delays[i % len(delays)] for i in acked}
        last_due = max(due.values(), default=time.time())
        # Nothing can be final before the last job is due; then watch the names.
        time.sleep(max(0.0, last_due - time.time()))
        deadline = last_due + options.drain_timeout
        while system.unfinished(warm) and time.time() < deadline:
            time.sleep(0.5)
        observed_until = time.time()
        exited = _exited(system)
        # A tree whose root is gone took its CPU time with it (into a parent
        # that may be gone too): no figure rather than a wrong one.
        cpu = {
            role: None if role in exited else round(tree_cpu_seconds(root) - cpu_before[role], 2)
            for role, root in system.trees.items()
        }
        fake_cpu = tree_cpu_seconds(fake.pid) - fake_before
    finally:
        if window is not None:
            window.finish()
    return Observed(
        client, warm, due, observed_until, cpu, window, client_cpu, fake_cpu, busy_before, exited
    )


# perf counts over this share of the arrivals, starting this far into them:
# the web and the worker (which runs what was created 5 s earlier) are
# both past their first seconds by then.
PERF_WINDOW_START = 0.4
PERF_WINDOW_SHARE = 0.5
# perf stat takes about this long to attach to a tree.
PERF_ATTACH_SECONDS = 0.3


class PerfWindow:
    """``perf stat`` on every tree for a window of the run, and each tree's CPU at its edges."""

    def __init__(self, trees: dict[str, int], log_dir: Path, *, start_in: float, seconds: float):
        self.trees = trees
        self.log_dir = log_dir
        self.start_in = start_in
        self.seconds = seconds
        self.started: float | None = None  # wall time of the window's edges
        self.ended: float | None = None
        self.cpu: dict[str, float] = {}  # each tree's CPU seconds within the window
        self.counts: dict[str, dict[str, int] | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="perf-window", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        """End the window now if it is still open, and wait for perf to stop."""
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        if self._stop.wait(self.start_in):
            return
        counters = {
            role: FlushCount(f"perf-{role}", root, self.log_dir)
            for role, root in self.trees.items()
        }
        try:
            time.sleep(PERF_ATTACH_SECONDS)
            # The counters count from here to the window's end: the CPU read
            # at the same edges, and the jobs counted between them.
            if not all([counter.resume() for counter in counters.values()]):
                return
            before = {role: tree_cpu_seconds(root) for role, root in self.trees.items()}
            self.started = time.time()
            self._stop.wait(self.seconds)
            self.ended = time.time()
            self.cpu = {
                role: tree_cpu_seconds(root) - before[role] for role, root in self.trees.items()
            }
            for counter in counters.values():
                counter.pause()
        finally:
            self.counts = {role: counter.stop() for role, counter in counters.items()}

    def jobs(self, role: str, acked: Sequence[float], due: Sequence[float]) -> int:
        """The jobs of ``role`` in the window: creates acknowledged in it, or, for the
        worker, jobs due in it (their runs)."""
        if self.started is None or self.ended is None:
            return 0
        times = due if role == "worker" else acked
        return sum(1 for moment in times if self.started <= moment < self.ended)


def per_job_outside(
    total: float | None, within: float | None, jobs: int, jobs_within: int
) -> float | None:
    """CPU ms per job over the run less a window: (total - within) / (jobs - jobs_within)."""
    if total is None:
        return None
    if within is None:
        within, jobs_within = 0.0, 0
    rest = jobs - jobs_within
    return round(1000 * (total - within) / max(1, rest), 3)


def _exited(system: RunningSystem) -> dict[str, str]:
    """The roles whose process ended during the run, each with how (its exit code, if
    this process started it, and the last line of the system's log)."""
    exited = {}
    for role, root in system.trees.items():
        if pid_alive(root):
            continue
        how = "ended"
        for server in system.servers:
            if server.pid == root and server.process.poll() is not None:
                how = f"exited with code {server.process.returncode}"
        tail = system.servers[0].log_tail(1).strip()
        exited[role] = f"{how}; last log line: {tail[:300]}" if tail else how
    return exited


def _summary(
    name: str, rate: int, options: Options, seen: Observed, outcomes: dict[str, Outcome]
) -> dict:
    """The figures of one run, from what the client saw and the job files found after it."""
    client, due, cpu, window = seen.client, seen.due, seen.cpu, seen.window
    outcomes = {job_id: outcome for job_id, outcome in outcomes.items() if job_id not in seen.warm}
    statuses: dict[str, int] = {}
    for status in client.status:
        key = str(status)
        statuses[key] = statuses.get(key, 0) + 1
    ok_indices = [i for i in range(client.count) if client.ids[i] is not None]
    ok = len(ok_indices)
    create_latency = [client.acked[i] - client.due_to_send(i) for i in ok_indices]
    send_lag = [
        client.sent[i] - client.due_to_send(i) for i in range(client.count) if client.sent[i]
    ]
    first_due = client.wall(client.start)
    last_ack = max((client.wall(client.acked[i]) for i in ok_indices), default=first_due)
    final = FINAL_PRODUCT if name == "product" else FINAL_YARDSTICK
    lateness, unfinished_lower_bounds = [], 0
    lost = twice = not_final = failed = 0
    finishes = []
    for job_id, due_at in due.items():
        outcome = outcomes.get(job_id)
        if outcome is None:
            lost += 1
            continue
        if outcome.completions > 1:
            twice += 1
        if outcome.status not in final or outcome.finished is None:
            not_final += 1
            # Still running when we stopped looking: at least this late.
            lateness.append(seen.observed_until - due_at)
            unfinished_lower_bounds += 1
            continue
        if outcome.status != "completed":
            failed += 1
        lateness.append(outcome.finished - due_at)
        finishes.append(outcome.finished)
    last_due = max(due.values(), default=None)
    drain = round(max(finishes) - last_due, 3) if finishes and not not_final and last_due else None
    late = _stats_ms(lateness)
    created = _stats_ms(create_latency)
    refused_503 = statuses.get("503", 0)
    errors = client.count - ok
    held = bool(
        ok >= HELD_ANSWERED_SHARE * client.count
        and created["p99_ms"] is not None
        and created["p99_ms"] <= 1000 * HELD_CREATE_P99_SECONDS
        and late["p99_ms"] is not None
        and late["p99_ms"] <= 1000 * HELD_P99_SECONDS
        and not not_final
        and not lost
        and not twice
        and not seen.exited
    )
    jobs_seen = len(outcomes)
    counts = window.counts if window is not None else {}
    window_cpu = window.cpu if window is not None else {}
    acked_at = [client.wall(client.acked[i]) for i in ok_indices]
    due_at = list(due.values())
    window_jobs = (
        {role: window.jobs(role, acked_at, due_at) for role in counts} if window is not None else {}
    )
    return {
        "rate": rate,
        "seconds": options.duration,
        "offered": client.count,
        "answered_2xx": ok,
        "achieved_per_second": round(ok / max(1e-9, last_ack - first_due), 1),
        "statuses": statuses,
        "refused_503": refused_503,
        "errors": errors,
        "create_latency_from_due_send": created,
        "sent_late": sum(1 for lag in send_lag if lag > LATE_SEND_SECONDS),
        "send_lag_p99_ms": round(1000 * percentile(send_lag, 0.99), 1) if send_lag else None,
        "connections_opened": client.opened,
        "connections_peak": client.peak_connections,
        "connection_failures": client.open_failures,
        "lateness": late,
        "lateness_includes_unfinished_lower_bounds": unfinished_lower_bounds,
        "drain_seconds": drain,
        "drain_timeout_seconds": options.drain_timeout,
        "final": len(due) - not_final - lost,
        "failed": failed,
        "not_final": not_final,
        "lost": lost,
        "run_twice": twice if name == "product" else None,
        "duplicate_names": sum(1 for outcome in outcomes.values() if outcome.names > 1),
        "jobs_on_disk": jobs_seen,
        "jobs_on_disk_not_acknowledged": max(0, jobs_seen - len(due)),
        "cpu_seconds": cpu,
        # Per job acknowledged: the web's CPU per create, the worker's per job
        # run; outside perf's window (see the module's docstring).
        "cpu_ms_per_job": {
            role: per_job_outside(used, window_cpu.get(role), ok, window_jobs.get(role, 0))
            for role, used in cpu.items()
        },
        "perf_window": None
        if window is None or window.started is None or window.ended is None
        else {
            "seconds": round(window.ended - window.started, 2),
            "jobs": window_jobs,
            "cpu_seconds": {role: round(used, 2) for role, used in window_cpu.items()},
        },
        "syscalls": counts,
        "flushes_per_job": _per_job(counts, FLUSH_CALLS, window_jobs),
        "file_calls_per_job": _per_job(counts, FILE_CALLS, window_jobs),
        "syscalls_per_job": _per_job(counts, ("all",), window_jobs),
        "client_cpu_seconds": round(seen.client_cpu, 2),
        "client_cpu_seconds_per_1000_requests": round(1000 * seen.client_cpu / client.count, 3),
        "fake_unsplash_cpu_seconds": round(seen.fake_cpu, 2),
        "cpu_busy_before": None if seen.busy_before is None else round(seen.busy_before, 3),
        "exited": seen.exited,
        "held": held,
    }


def _per_job(
    counts: dict[str, dict[str, int] | None], calls: tuple[str, ...], jobs: dict[str, int]
) -> dict[str, float | None]:
    """Calls among ``calls`` per job of the window, for each process tree counted."""
    return {
        role: None
        if found is None or not jobs.get(role)
        else round(sum(found.get(call, 0) for call in calls) / jobs[role], 2)
        for role, found in counts.items()
    }


# --- the fake Unsplash in its own process -------------------------------------


def serve_fake_unsplash(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sustained fake-unsplash")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=UNSPLASH_LATENCY_MS)
    args = parser.parse_args(argv)
    fake_class = fake_unsplash_class()
    module = sys.modules[fake_class.__module__]
    # Thousands of calls a second (the yardstick makes one per job): keep
    # connections alive and let connects queue instead of being dropped.
    module._Server.request_queue_size = 4096
    module._Handler.protocol_version = "HTTP/1.1"
    # The handler writes the head and the body of an answer separately: with
    # Nagle's algorithm on, the body waited for the client's delayed ACK, and
    # each call on a kept-alive connection took 40-46 ms (the photo supply
    # then capped the product near 750 jobs/s, far from what a real API adds).
    module._Handler.disable_nagle_algorithm = True
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    with fake_class(port=args.port, latency_ms=args.latency_ms):
        while not stop:
            time.sleep(0.2)


def _start_fake(scratch: Scratch) -> Server:
    port = free_port()
    command = [PYTHON, "-m", "bench.sustained", "fake-unsplash", "--port", str(port)]
    fake = start("fake-unsplash", command, env=dict(os.environ), log_dir=scratch.root, port=port)
    try:
        wait_http(fake, "/photos/random", want=(200, 401), timeout=20)
    except BaseException:
        fake.stop()
        raise
    return fake


# --- the section -------------------------------------------------------------


def _wait_for_quiet_disk(limit: float) -> float:
    """Wait (up to ``limit`` seconds) until creating a file costs under QUIET_CREATE_US;
    return what it cost at the start of the run."""
    deadline = time.monotonic() + limit
    while True:
        cost = file_create_probe(50)
        if cost <= QUIET_CREATE_US or time.monotonic() >= deadline:
            return cost
        time.sleep(10)


def _within_budget(result: dict) -> str | None:
    if "error" in result:
        return verdict(None)
    if result["exited"]:
        return verdict(False)
    return verdict(all(value <= CPU_BUDGET_MS for value in result["cpu_ms_per_job"].values()))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _cells(result: dict) -> dict[str, str]:
    if "error" in result:
        return dict.fromkeys(
            ("creates", "create_latency", "lateness", "drain", "cost", "calls", "final", "held"),
            "run failed",
        )
    late = result["lateness"]
    bound = ">= " if result["lateness_includes_unfinished_lower_bounds"] else ""
    drain = (
        # Below 0: the last job finished before its due time (counted from its 2xx).
        f"{max(0.0, result['drain_seconds']):.1f} s"
        if result["drain_seconds"] is not None
        else f"> {result['drain_timeout_seconds']:.0f} s"
    )
    cpu = result["cpu_ms_per_job"]
    cost = "+".join("-" if value is None else f"{value:.2f}" for value in cpu.values()) + " ms"
    if result["exited"]:
        cost += f" (the {' and '.join(result['exited'])} process ended)"

    def calls(kind: str) -> str:
        values = [value for value in result.get(kind, {}).values() if value is not None]
        return "+".join(f"{value:.1f}" for value in values) if values else "-"

    others = result["errors"] - result["refused_503"]
    create = result["create_latency_from_due_send"]
    return {
        "creates": f"{result['achieved_per_second']:,.0f}/s, 503 {result['refused_503']:,}, "
        f"other {others:,}",
        "create_latency": f"{_ms(create['p50_ms'])} / {_ms(create['p99_ms'])} ms, "
        f"{result['sent_late']:,} sent late",
        "lateness": f"{bound}{_ms(late['p50_ms'])} / {bound}{_ms(late['p99_ms'])} / "
        f"{bound}{_ms(late['max_ms'])} ms",
        "drain": drain,
        "cost": cost,
        "calls": f"{calls('file_calls_per_job')}, {calls('flushes_per_job')}, "
        f"{calls('syscalls_per_job')}",
        "final": f"{result['final']:,}/{result['answered_2xx']:,}, {result['lost']}, "
        f"{'-' if result['run_twice'] is None else result['run_twice']}",
        "held": "held" if result["held"] else "not held",
    }


def _mixed_label(options: Options) -> str:
    delays = options.mixed_delays
    return f"{options.mixed_rate:,}/s, delays {min(delays)}-{max(delays)} s mixed"


def _rate_rows(
    section: Section, label: str, rate: int, result: dict, yardstick: dict | None = None
) -> None:
    """The rows of one rate: the product's ``result`` beside the yardstick's, if it ran."""
    product = _cells(result)
    other = (
        _cells(yardstick)
        if yardstick is not None
        else {"creates": "no such run: one delay for all jobs"}
    )

    def row(figure: str, cell: str, **kwargs) -> None:
        section.row(f"{label}: {figure}", product[cell], yardstick=other.get(cell, ""), **kwargs)

    row("2xx/s, 503s, other errors", "creates")
    row("create p50 / p99 (from due send)", "create_latency")
    row("late p50 / p99 / max", "lateness")
    row("drain after last due", "drain")
    row(
        "CPU ms per create (web) + per job (worker)",
        "cost",
        target=f"<= {CPU_BUDGET_MS} + {CPU_BUDGET_MS}",
        verdict=_within_budget(result),
    )
    row("per job: file calls, flushes, all syscalls", "calls")
    if "error" in result:
        accounted = False
    elif result["held"] or rate <= GOAL_RATE:
        accounted = not result["lost"] and not result["run_twice"] and not result["not_final"]
    else:  # falling behind is the held row's business; losing jobs never is
        accounted = not result["lost"] and not result["run_twice"]
    row("final, lost, run twice", "final", target="all final, 0, 0", verdict=verdict(accounted))
    row("held", "held")


def _run(
    name: str, system, rate: int, options: Options, use_perf: bool, section: Section, label: str
) -> dict:
    """One system's run at ``rate``: its summary, or the error it failed with (noted)."""
    flush_pending_writes()
    create_us = _wait_for_quiet_disk(options.quiet_wait)
    run_scratch = Scratch.make(f"sustained-{name}-{rate}")
    try:
        # A fake Unsplash of its own for each run: a system far behind
        # (the yardstick at 3,000 jobs/s) leaves thousands of calls
        # queued at the fake, which went on answering them through the
        # next run, and that run measured the fake's backlog (a load
        # average of 900 at its start, 96 s of the fake's CPU in it).
        fake = _start_fake(run_scratch)
        with running(fake):
            with system(run_scratch, fake.url) as running_system:
                seen = _drive(running_system, rate, options, fake, use_perf)
            # Read after the system stopped: no name changes under the reader.
            outcomes = running_system.outcomes()
        result = _summary(name, rate, options, seen, outcomes)
        result["file_create_us_at_start"] = create_us
        result["fake_unsplash_pid"] = fake.pid
        for role, how in result["exited"].items():
            section.notes.append(f"{label}, {name}: its {role} process {how}")
    except Exception as exc:
        # One run that fails (a server that never got healthy)
        # is reported as such; the other runs still count.
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        result = {"rate": rate, "error": error, "held": False}
        section.notes.append(f"{label}, {name}: failed: {error}")
    finally:
        run_scratch.release()
    return result


def measure(profile: Profile, options: Options | None = None) -> Section:
    options = options or options_for(profile)
    section = Section("7 sustained")
    use_perf = perf_usable()
    results: dict[str, dict[str, dict]] = {}
    for rate in options.rates:
        results[str(rate)] = {
            name: _run(name, system, rate, options, use_perf, section, f"{rate:,}/s")
            for name, system in (("product", _product), ("yardstick", _yardstick))
        }
    mixed = None
    if options.mixed_rate:
        mixed_label = _mixed_label(options)
        mixed = _run(
            "product",
            functools.partial(_product, delays=options.mixed_delays, delay_step=MIXED_DELAY_STEP),
            options.mixed_rate,
            options,
            use_perf,
            section,
            mixed_label,
        )
    section.data = {
        "options": options.__dict__,
        "delay_seconds": DELAY_SECONDS,
        "mixed_delays": {"delays": list(options.mixed_delays), "product": mixed} if mixed else None,
        "unsplash_latency_ms": UNSPLASH_LATENCY_MS,
        "syscalls_counted_by": f"perf stat ({_perf_events()})" if use_perf else None,
        "rates": results,
    }
    held = {
        name: max((int(r) for r, pair in results.items() if pair[name]["held"]), default=0)
        for name in ("product", "yardstick")
    }
    section.data["highest_rate_held"] = held
    for rate, pair in results.items():
        _rate_rows(section, f"{int(rate):,}/s", int(rate), pair["product"], pair["yardstick"])
    if mixed is not None:
        _rate_rows(section, _mixed_label(options), options.mixed_rate, mixed)
    goal = min(GOAL_RATE, max(options.rates))
    section.row(
        "highest rate held",
        f"{held['product']:,} jobs/s",
        yardstick=f"{held['yardstick']:,} jobs/s",
        target=f">= {goal:,} jobs/s",
        verdict=verdict(held["product"] >= goal),
    )
    runs = [run for pair in results.values() for run in pair.values() if "error" not in run]
    requests = sum(run["offered"] for run in runs)
    if requests:
        client_cpu = sum(run["client_cpu_seconds"] for run in runs)
        section.data["client_cpu_seconds_per_1000_requests"] = round(
            1000 * client_cpu / requests, 3
        )
        section.row(
            "client CPU s per 1,000 requests",
            f"{1000 * client_cpu / requests:.3f} ({client_cpu:.2f} s for {requests:,})",
        )
    section.notes.append(
        f"open-loop arrivals for {options.duration:g} s per rate, every job due "
        f"{DELAY_SECONDS} s after its create; fake Unsplash answering in "
        f"{UNSPLASH_LATENCY_MS} ms + its own time "
        "(the yardstick calls it once per job); product create throttle off"
    )
    if mixed is not None:
        section.notes.append(
            f"{_mixed_label(options)}: the product alone (JOBS_DELAY_STEP="
            f"{MIXED_DELAY_STEP}), each request in turn asking for the next delay of "
            f"{min(options.mixed_delays)}-{max(options.mixed_delays)} s, so that the jobs due "
            "in one second were created in many different seconds, as in real use (with one "
            "delay for all they were created together, in one second's directory of the store)"
        )
    section.notes.append(
        "late = finish - (2xx + delay); held = >= 99.9 % answered 2xx, create p99 <= 1 s "
        f"(from the instant it was due to be sent), late p99 <= 1 s, every job final within "
        f"{options.drain_timeout:g} s of the last due, none lost or run twice; '>=': jobs "
        "still unfinished counted as late as when the wait ended; sent late: more than "
        f"{1000 * LATE_SEND_SECONDS:.0f} ms after its instant (no free connection, or the "
        "client short of CPU)"
    )
    section.notes.append(
        "CPU per create / per job: the web and worker process trees (yardstick: its one "
        "process) over the run and its drain, per job acknowledged; per job: calls on files "
        f"({', '.join(FILE_CALLS)}), flushes ({', '.join(FLUSH_CALLS)}) and all system calls "
        "of the same trees, web+worker, "
        + (
            f"counted by perf stat over {PERF_WINDOW_SHARE:.0%} of the arrivals from "
            f"{PERF_WINDOW_START:.0%} into them, per job of that window; the CPU figures "
            "leave that window out (perf's counting costs the traced processes CPU)"
            if use_perf
            else "not counted (perf cannot run here)"
        )
    )
    starts = [
        run["file_create_us_at_start"]
        for pair in results.values()
        for run in pair.values()
        if "file_create_us_at_start" in run
    ]
    if starts:
        section.notes.append(
            f"creating a file took {min(starts):,.0f}-{max(starts):,.0f} us when the "
            f"runs started (each waits up to {options.quiet_wait:g} s for under "
            f"{QUIET_CREATE_US:g} us: see QUIET_CREATE_US)"
        )
    if options.rates and profile.name == "smoke":
        section.notes.append("smoke: one low rate for a few seconds, a check of the machinery")
    return section


if __name__ == "__main__":
    if sys.argv[1:2] == ["fake-unsplash"]:
        serve_fake_unsplash(sys.argv[2:])
    else:
        sys.exit("usage: python -m bench.sustained fake-unsplash --port N [--latency-ms MS]")
