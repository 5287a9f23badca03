"""Prometheus metrics: the families, the helpers that record them, ``GET /metrics``.

The web server and the worker are several processes each, so the metrics
use prometheus_client's multiprocess mode: every process writes its own
values into memory-mapped files in ``JOBS_METRICS_DIR`` (default
``<JOBS_DATA_DIR>/metrics``) and a scrape adds them up. Files are named
after ``<host>-<pid>``, not the pid alone, because containers sharing one
data volume have pids that collide.

The directory is wiped when a process finds no other process using it
(each holds a shared ``flock`` on ``metrics/lock`` for its whole life), so
a full restart starts every counter from zero, which Prometheus reads as an
ordinary restart. The files of a process that died while others run are
kept on purpose: deleting them would make the totals go down. Queue depth
is not stored at all but read from the broker at scrape time, so no value
of a dead process can go stale.

Recording never raises: a metric that cannot be written is logged once per
process and the request or job goes on. Nor does it crash on a full disk:
the library grows its files by truncating them longer (a hole) and writing
into the hole through the memory map, which a full file system answers by
killing the process (SIGBUS). :class:`SpaceBackedFile` reserves the blocks
first, so a full disk is an ``ENOSPC`` it can handle: the values that find
no room are kept in memory, missing from scrapes, and written once there
is room again.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import hmac
import logging
import mmap
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ParamSpec

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    mmap_dict,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

logger = logging.getLogger(__name__)

FINAL_STATUSES = ("completed", "failed", "cancelled")
UNSPLASH_OUTCOMES = ("ok", "rate_limited", "transient", "permanent")
QUEUE_STATES = ("ready", "due", "leased", "dead")
# The route label of a request that matched no URL pattern (files served by
# whitenoise, unknown addresses): raw paths would make one series per URL.
UNMATCHED_ROUTE = "unmatched"

# prometheus_client splits file names on "_", so the host part must have none.
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


_identifier: str | None = None


def process_identifier() -> str:
    """This process's name in the metric files: unique across hosts sharing the directory.

    prometheus_client asks for it at every change of a value, to notice a
    fork: it is made once per process (a fork forgets it), not with a
    ``getpid`` call each time.
    """
    global _identifier
    if _identifier is None:
        _identifier = f"{_HOST}-{os.getpid()}"
    return _identifier


def _forget_identifier() -> None:
    global _identifier
    _identifier = None


os.register_at_fork(after_in_child=_forget_identifier)


def claim_directory(path: Path) -> int:
    """Create ``path`` (mode 0700), wipe it if no live process uses it, and hold it.

    Returns the descriptor holding a shared lock on ``path/lock`` for as long
    as this process (and its forked children, which inherit it) lives.
    The wipe runs only under an exclusive lock, which no other live process
    can hold, so no live process ever loses its files.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"JOBS_METRICS_DIR={str(path)!r} cannot be created or written: {exc.strerror}."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # another process is running: its files stay
    else:
        for stale in (*path.glob("*.db"), *path.glob(f".*{_NEW_FILE_SUFFIX}")):
            stale.unlink(missing_ok=True)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


# A value file being made (see SpaceBackedFile): hidden from the scrape's "*.db".
_NEW_FILE_SUFFIX = ".new"


def _reserve(fd: int, start: int, end: int) -> None:
    """Give bytes ``start`` to ``end`` of the file blocks of their own, or raise ``OSError``
    (``ENOSPC`` on a full disk). The file grows to ``end`` if it is shorter."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, start, end - start)
        return
    zeros = memoryview(bytes(end - start))
    while zeros:
        written = os.pwrite(fd, zeros, start)
        zeros, start = zeros[written:], start + written


class SpaceBackedFile(mmap_dict.MmapedDict):
    """One process's value file, as prometheus_client's, with its blocks reserved before use.

    prometheus_client makes and grows the file with ``ftruncate``, which
    allocates nothing, then writes through the memory map: on a full file
    system the page has no block and the kernel kills the process with
    SIGBUS, whatever the code around it catches. Here the blocks of each new
    part are reserved first (``posix_fallocate``), so writes through the map
    always land on a block, and a full disk is an ``OSError`` on the way in.

    A value that finds no room is kept in memory (missing from scrapes) and
    placed in the file on a later write once there is room, at most one try
    per ``retry_seconds``; the process logs one warning when values start
    going missing and one line when they are all in the file again. The
    file is made under a hidden name and linked into place whole, so a
    scrape never reads a file without its header.

    Thread safety: as the library's, the caller holds the values' lock.
    """

    retry_seconds = 1.0
    _missing_logged = False  # per process: one warning, not one per request

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        if read_mode:
            super().__init__(filename, read_mode=True)
            return
        self._fname = filename
        self._f: Any = None
        self._m: Any = None
        self._capacity = 0
        self._used = 8
        self._positions: dict[str, int] = {}
        self._unplaced: dict[str, tuple[float, float]] = {}
        self._next_try = 0.0
        self._open_file()

    # --- the library's interface -------------------------------------------------

    def read_value(self, key: str) -> tuple[float, float]:
        if key not in self._positions and not self._place(key):
            return self._unplaced.setdefault(key, (0.0, 0.0))
        return super().read_value(key)

    def write_value(self, key: str, value: float, timestamp: float) -> None:
        if key not in self._positions and not self._place(key):
            self._unplaced[key] = (value, timestamp)
            return
        super().write_value(key, value, timestamp)

    def close(self) -> None:
        if self._f is not None:
            super().close()

    # --- placing values --------------------------------------------------------------

    def _place(self, key: str) -> bool:
        """Give ``key`` its place in the file, with the value it has in memory, and so the
        other values waiting; False if there is no room (or it is not time to try again)."""
        now = time.monotonic()
        if now < self._next_try:
            return False
        try:
            if self._f is None:
                self._open_file(raise_errors=True)
            for waiting in (key, *self._unplaced):
                if waiting not in self._positions:
                    self._init_value(waiting)
                value = self._unplaced.pop(waiting, None)
                if value is not None:
                    super().write_value(waiting, *value)
        except OSError as exc:
            self._next_try = now + self.retry_seconds
            self._missing(exc)
            return key in self._positions
        if SpaceBackedFile._missing_logged:
            SpaceBackedFile._missing_logged = False
            logger.info("Metric values are written to %s again", self._fname)
        return True

    def _init_value(self, key: str) -> None:
        encoded = key.encode("utf-8")
        padded = encoded + b" " * (8 - (len(encoded) + 4) % 8)
        entry = struct.pack(f"i{len(padded)}sdd", len(encoded), padded, 0.0, 0.0)
        capacity = self._capacity
        while self._used + len(entry) > capacity:
            capacity *= 2
        if capacity != self._capacity:
            _reserve(self._f.fileno(), self._capacity, capacity)
            self._m = mmap.mmap(self._f.fileno(), capacity)
            self._capacity = capacity
        super()._init_value(key)  # now within the reserved capacity: no growth

    def _open_file(self, *, raise_errors: bool = False) -> None:
        """Open the file, making it (reserved, with its header) if there is none yet."""
        try:
            if not os.path.exists(self._fname):
                self._make_file()
            f = open(self._fname, "a+b")  # noqa: SIM115 (closed by close())
            try:
                capacity = os.fstat(f.fileno()).st_size
                if capacity < mmap_dict._INITIAL_MMAP_SIZE:
                    _reserve(f.fileno(), capacity, mmap_dict._INITIAL_MMAP_SIZE)
                    capacity = mmap_dict._INITIAL_MMAP_SIZE
                m = mmap.mmap(f.fileno(), capacity)
            except BaseException:
                f.close()
                raise
        except OSError as exc:
            if raise_errors:
                raise
            # No file, no values in scrapes: this process's values wait in memory.
            self._next_try = time.monotonic() + self.retry_seconds
            self._missing(exc)
            return
        self._f, self._m, self._capacity = f, m, capacity
        used = mmap_dict._unpack_integer(m, 0)[0]
        if used == 0:
            mmap_dict._pack_integer(m, 0, self._used)
        else:
            self._used = used
            for key, _, _, pos in self._read_all_values():
                self._positions[key] = pos

    def _make_file(self) -> None:
        directory, name = os.path.split(self._fname)
        new = os.path.join(directory, f".{name}.{os.getpid()}{_NEW_FILE_SUFFIX}")
        fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _reserve(fd, 0, mmap_dict._INITIAL_MMAP_SIZE)
            os.pwrite(fd, struct.pack("i", 8), 0)
            with contextlib.suppress(FileExistsError):  # made meanwhile: that one is used
                os.link(new, self._fname)
        finally:
            os.close(fd)
            os.unlink(new)

    def _missing(self, exc: OSError) -> None:
        if not SpaceBackedFile._missing_logged:
            SpaceBackedFile._missing_logged = True
            logger.warning(
                "No room for metric values in %s (%s): they are missing from /metrics "
                "until there is room",
                self._fname,
                exc.strerror or exc,
            )


def enabled() -> bool:
    return settings.JOBS_METRICS != "off"


def directory() -> Path:
    return Path(settings.JOBS_METRICS_DIR)


def _configure() -> int | None:
    """Switch prometheus_client to multiprocess mode; must run before any metric exists."""
    if not enabled():
        return None
    path = directory()
    fd = claim_directory(path)
    # Read by prometheus_client whenever a value file is opened, also in
    # forked worker processes.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    # The value class opens its files by this module-level name.
    values.MmapedDict = SpaceBackedFile
    values.ValueClass = values.MultiProcessValue(process_identifier)
    return fd


_directory_lock = _configure()

# --- The families ----------------------------------------------------------
# registry=None: the values live in the files; a scrape reads them through
# the registry built in exposition(), never through the global one.

JOBS_CREATED = Counter("jobs_created", "Jobs created (API, page and command line).", registry=None)
JOBS_FINISHED = Counter(
    "jobs_finished",
    "Jobs that reached a final status.",
    ["status"],
    registry=None,
)
START_LATENESS = Histogram(
    "jobs_start_lateness_seconds",
    "Seconds between a job's due time and the moment a worker started it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=None,
)
BATCH_SIZE = Histogram(
    "jobs_batch_size",
    "Jobs per task delivered to a worker.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
    registry=None,
)
UNSPLASH_CALLS = Counter(
    "jobs_unsplash_calls",
    "Calls to the Unsplash API by outcome (ok, rate_limited, transient, permanent).",
    ["outcome"],
    registry=None,
)
RATE_LIMIT_WAITS = Counter(
    "jobs_unsplash_rate_limit_waits",
    "Times a job waited because the Unsplash rate limit was reached.",
    registry=None,
)
HTTP_REQUESTS = Counter(
    "jobs_http_requests",
    "HTTP requests by route (URL pattern name) and status code.",
    ["route", "status"],
    registry=None,
)
HTTP_DURATION = Histogram(
    "jobs_http_request_duration_seconds",
    "Seconds from a request's arrival to its response (for a stream: to its start).",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)

# Series that exist from the start read 0 instead of missing, so a rate()
# or an alert on them works before the first event.
for _status in FINAL_STATUSES:
    JOBS_FINISHED.labels(_status)
for _outcome in UNSPLASH_OUTCOMES:
    UNSPLASH_CALLS.labels(_outcome)

_failure_logged = False
P = ParamSpec("P")


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """Metrics are an aid: a full disk or a bad label must not fail a request or a job."""

    @functools.wraps(record)
    def safely(*args: P.args, **kwargs: P.kwargs) -> None:
        global _failure_logged
        try:
            record(*args, **kwargs)
        except Exception:
            if not _failure_logged:  # once per process, not once per request
                _failure_logged = True
                logger.exception("Recording a metric failed; metrics may be incomplete")

    return safely


# --- What the rest of the code calls ------------------------------------------


@_never_raises
def job_created(count: int = 1) -> None:
    """``count`` jobs were created (a batch of creates counts once)."""
    if count:
        JOBS_CREATED.inc(count)


@_never_raises
def job_finished(status: str) -> None:
    """A job reached ``status``: completed, failed or cancelled."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"{status!r} is not a final job status")
    JOBS_FINISHED.labels(status).inc()


@_never_raises
def job_started(lateness_seconds: float) -> None:
    """A worker started a job this many seconds after it fell due."""
    # A job picked up a hair early (clocks of two processes) counts as on time.
    START_LATENESS.observe(max(0.0, lateness_seconds))


@_never_raises
def batch_delivered(size: int) -> None:
    BATCH_SIZE.observe(size)


@_never_raises
def unsplash_call(outcome: str) -> None:
    """One Unsplash API call ended with ``outcome``: ok, rate_limited, transient or permanent."""
    if outcome not in UNSPLASH_OUTCOMES:
        raise ValueError(f"{outcome!r} is not an Unsplash call outcome")
    UNSPLASH_CALLS.labels(outcome).inc()


@_never_raises
def rate_limit_wait() -> None:
    RATE_LIMIT_WAITS.inc()


def http_request(route: str, status: int, seconds: float) -> None:
    http_requests(route, (status,), seconds)


@_never_raises
def http_requests(route: str, statuses: Iterable[int], seconds: float) -> None:
    """Requests to one route answered together, all after ``seconds``: one write per
    status and per histogram series for all of them, not four per request
    (the creates the gateway answers as a batch)."""
    counts = collections.Counter(statuses)
    for status, count in counts.items():
        HTTP_REQUESTS.labels(route, str(status)).inc(count)
    observe_times(HTTP_DURATION.labels(route), seconds, sum(counts.values()))


def observe_times(histogram: Histogram, value: float, times: int) -> None:
    """``histogram.observe(value)`` done ``times`` times, in two writes.

    prometheus_client has no weighted observation: this does what its
    ``observe`` does (add to the sum, count in the first bucket whose bound
    holds the value) with ``times`` for 1. A test compares the two.
    """
    if times <= 0:
        return
    histogram._raise_if_not_observable()
    histogram._sum.inc(value * times)
    for index, bound in enumerate(histogram._upper_bounds):
        if value <= bound:
            histogram._buckets[index].inc(times)
            break


def process_exited(identifier: str | None = None) -> None:
    """Bookkeeping when a process ends: drop its live gauges.

    Counters and histograms of the process stay (see the module docstring).
    """
    if not enabled():
        return
    try:
        mark_process_dead(identifier or process_identifier(), str(directory()))
    except OSError:
        logger.warning("Could not remove the metric files of a finished process", exc_info=True)


# --- HTTP ------------------------------------------------------------------------


def route_of(request: HttpRequest) -> str:
    """The URL pattern a request matched: its name, else the pattern; never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED_ROUTE
    return match.view_name if match.url_name else match.route


class MetricsMiddleware:
    """Counts requests by route and status and times them; placed first, so it sees
    every response, including files served by whitenoise and error pages."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not enabled():
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        try:
            route = route_of(request)
        except Exception:
            route = UNMATCHED_ROUTE
        http_request(route, response.status_code, time.perf_counter() - started)
        return response


class QueueCollector:
    """Queue depth read from the broker at scrape time.

    Counting lists every message (about 10 ms per 1,000 on files), so one
    count per process serves every scrape for ``max_age`` seconds: two
    Prometheus servers, or anyone reloading an open /metrics, do not
    multiply that cost.
    """

    max_age = 5.0
    _lock = threading.Lock()
    _cached: tuple[float, Any, dict[str, Any]] | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        # Registration calls describe(), not collect(): no broker work until a scrape.
        return [self._messages(), self._lateness()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = self._counts()
        except Exception:
            # The other families are still worth serving; health reports the broker.
            logger.warning("Could not count the queue's messages for /metrics", exc_info=True)
            return
        messages = self._messages()
        for state in QUEUE_STATES:
            messages.add_metric([state], counts.get(state, 0))
        yield messages
        lateness = self._lateness()
        lateness.add_metric([], counts.get("oldest_due_lateness_seconds", 0))
        yield lateness

    @classmethod
    def _counts(cls) -> dict[str, Any]:
        from jobs import store

        broker = store.broker()
        with cls._lock:
            cached = cls._cached
            if (
                cached is None
                or cached[1] is not broker
                or time.monotonic() - cached[0] >= cls.max_age
            ):
                cls._cached = cached = (time.monotonic(), broker, broker.counts())
            return cached[2]

    @staticmethod
    def _messages() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "jobs_queue_messages",
            "Queue messages by state: ready (of which due: may be handed out now), leased, dead.",
            labels=["state"],
        )

    @staticmethod
    def _lateness() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "jobs_queue_oldest_due_lateness_seconds",
            "How long the oldest due message has waited for a worker.",
        )


def exposition(path: Path | None = None) -> bytes:
    """Every process's metrics plus the queue depth, in the Prometheus text format."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path or directory()))
    registry.register(QueueCollector())
    return generate_latest(registry)


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _is_staff(request: HttpRequest) -> bool:
    user: Any = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    mode = settings.JOBS_METRICS
    if mode == "open" or _is_staff(request):
        return None
    if mode == "token":
        token = _bearer_token(request)
        if token is not None and hmac.compare_digest(
            token.encode(), settings.JOBS_METRICS_TOKEN.encode()
        ):
            return None
        response = HttpResponse(
            "Metrics need the bearer token of JOBS_METRICS_TOKEN (or a staff login).\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(
        "Metrics are for staff: log in at /admin/, or set JOBS_METRICS_TOKEN for a scraper.\n",
        status=403,
        content_type="text/plain; charset=utf-8",
    )


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not enabled():
        raise Http404("metrics are off")
    refusal = _refusal(request)
    if refusal is not None:
        refusal["Cache-Control"] = "no-store"
        return refusal
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
