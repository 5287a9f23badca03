"""A flood of connections beside the API: does the API still answer, do events still arrive?

    .venv/bin/python -m bench.streams_flood [--streams 5000] [--slow-bodies 1250] [--seconds 10]

One web server, exactly as ``manage.py serve`` starts it (no worker: the
events come from creates). ``GET /api/jobs`` is measured three times with
wrk (4 connections), each time while a job is created every half second:

1. idle: nothing else open;
2. with ``--streams`` open ``GET /api/events`` streams, all read by one
   asyncio loop in this process; every create's event is timed at every
   stream from the job's ``created_at``;
3. with ``--slow-bodies`` connections that sent the headers of a
   ``POST /api/jobs`` and only part of its body.

Targets (what a user relies on): the API's p99 with the streams open within
2 x its idle value, every event delivered within 1 s, and the slow bodies
neither slowing the API down nor outliving the server's body timeout.
Prints a table and one ``JSON {...}`` line; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import sys
import threading
import time
import urllib.request
from datetime import datetime

from bench.load import GET_LUA, LoadResult, wrk
from bench.processes import running, wait_http
from bench.sse import EventStreams
from bench.systems import LONG_DELAY, Scratch, product_env, remove_released, start_web
from bench.timing import percentile

P99_FACTOR = 2.0
DELAY_SECONDS = 1.0
API_CONNECTIONS = 4
CREATE_EVERY = 0.5
SEED_JOBS = 60


def _create(url: str) -> str | None:
    request = urllib.request.Request(
        url + "/api/jobs", data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["id"]
    except OSError:
        return None


class Creator:
    """Creates a job every ``CREATE_EVERY`` seconds in a thread, while it runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.created: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Creator:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(CREATE_EVERY):
            job_id = _create(self.url)
            if job_id is None:
                self.failed += 1
            else:
                self.created.append(job_id)


def _api(url: str, seconds: float) -> tuple[LoadResult, Creator]:
    with Creator(url) as creator:
        result = wrk(
            url + "/api/jobs", GET_LUA, seconds=seconds, connections=API_CONNECTIONS, timeout=10
        )
    return result, creator


class SlowBodies:
    """Connections that send the head of a POST and part of its body, then wait."""

    def __init__(self, host: str, port: int, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self.sockets: list[socket.socket] = []
        self.answered = 0  # connections the server answered or closed

    def open(self) -> None:
        head = (
            f"POST /api/jobs HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"delay_'
        ).encode()
        for _ in range(self.count):
            sock = socket.create_connection((self.host, self.port))
            sock.sendall(head)
            sock.setblocking(False)
            self.sockets.append(sock)

    def poll(self) -> int:
        """How many the server has answered (or closed) by now."""
        for sock in list(self.sockets):
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            del data
            self.sockets.remove(sock)
            sock.close()
            self.answered += 1
        return self.answered

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure(streams_count: int, slow_count: int, seconds: float) -> dict:
    # One descriptor per stream and slow body, in this process.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    scratch = Scratch.make("flood")
    streams = slow = None
    try:
        web = start_web(scratch, product_env(scratch.data, **LONG_DELAY))
        with running(web):
            wait_http(web, "/api/health", want=(200, 503))
            for _ in range(SEED_JOBS):
                _create(web.url)
            wrk(web.url + "/api/jobs", GET_LUA, seconds=2, connections=API_CONNECTIONS)
            idle, _ = _api(web.url, seconds)

            streams = EventStreams("127.0.0.1", web.port, streams_count, stagger=0.0002)
            open_seconds = streams.open(timeout=120)
            subscribed, refused = streams.subscribed, len(streams.failed)
            flooded, creator = _api(web.url, seconds)
            wanted = set(creator.created)
            expected = len(wanted) * subscribed
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                arrived = [a for a in list(streams.arrivals) if a.job_id in wanted]
                if len(arrived) >= expected:
                    break
                time.sleep(0.2)
            delays = [a.at - _epoch(a.created_at) for a in arrived]
            still_open = streams.subscribed - streams.ended - len(streams.failed) + refused
            streams.close()
            streams = None

            slow_result = None
            slow_cut_seconds = None
            if slow_count:
                slow = SlowBodies("127.0.0.1", web.port, slow_count)
                started = time.monotonic()
                slow.open()
                slow_result, _ = _api(web.url, seconds)
                while slow.poll() < slow_count and time.monotonic() - started < 60:
                    time.sleep(0.1)
                slow_cut_seconds = time.monotonic() - started
                slow_answered = slow.answered
                slow.close()
                slow = None
    finally:
        for closing in (streams, slow):
            if closing is not None:
                with contextlib.suppress(Exception):
                    closing.close()
        scratch.release()
        remove_released()
    report = {
        "streams": streams_count,
        "subscribed": subscribed,
        "refused": refused,
        "open_seconds": round(open_seconds, 1),
        "streams_open_at_end": still_open,
        "api_idle": idle.as_dict(),
        "api_with_streams": flooded.as_dict(),
        "p99_ratio": round(flooded.p99_ms / idle.p99_ms, 2) if idle.p99_ms else None,
        "deliveries_expected": expected,
        "deliveries": len(delays),
        "delay_p50_ms": round(percentile(delays, 0.5) * 1000, 1) if delays else None,
        "delay_p99_ms": round(percentile(delays, 0.99) * 1000, 1) if delays else None,
        "delay_max_ms": round(max(delays) * 1000, 1) if delays else None,
        "creates_failed_with_streams": creator.failed,
    }
    if slow_result is not None:
        report.update(
            slow_bodies=slow_count,
            api_with_slow_bodies=slow_result.as_dict(),
            slow_bodies_cut=slow_answered,
            slow_bodies_cut_within_seconds=round(slow_cut_seconds, 1),
        )
    return report


def verdicts(report: dict) -> list[tuple[str, str, bool]]:
    idle, flooded = report["api_idle"], report["api_with_streams"]
    rows = [
        (
            f"{report['subscribed']:,} of {report['streams']:,} streams open "
            f"({report['open_seconds']} s to open)",
            "all",
            report["subscribed"] == report["streams"],
        ),
        (
            f"GET /api/jobs p99 idle {idle['p99_ms']:.1f} ms, with streams "
            f"{flooded['p99_ms']:.1f} ms ({report['p99_ratio']} x); "
            f"{flooded['rps']:,.0f} vs {idle['rps']:,.0f} req/s",
            f"<= {P99_FACTOR:g} x",
            report["p99_ratio"] is not None
            and report["p99_ratio"] <= P99_FACTOR
            and flooded["non2xx"] == 0
            and flooded["socket_errors"] == 0,
        ),
        (
            f"event delay p50 / p99 / max {report['delay_p50_ms']} / {report['delay_p99_ms']}"
            f" / {report['delay_max_ms']} ms, {report['deliveries']:,} of "
            f"{report['deliveries_expected']:,} delivered",
            f"p99 <= {DELAY_SECONDS:g} s, all",
            report["delay_p99_ms"] is not None
            and report["delay_p99_ms"] <= DELAY_SECONDS * 1000
            and report["deliveries"] >= report["deliveries_expected"],
        ),
    ]
    if "slow_bodies" in report:
        slow = report["api_with_slow_bodies"]
        rows.append(
            (
                f"{report['slow_bodies']:,} slow bodies: GET p99 {slow['p99_ms']:.1f} ms "
                f"({slow['non2xx']} errors, {slow['socket_errors']} timeouts); "
                f"{report['slow_bodies_cut']:,} cut off within "
                f"{report['slow_bodies_cut_within_seconds']} s",
                f"p99 <= {P99_FACTOR:g} x idle, all cut",
                slow["p99_ms"] <= P99_FACTOR * idle["p99_ms"]
                and slow["non2xx"] == 0
                and slow["socket_errors"] == 0
                and report["slow_bodies_cut"] == report["slow_bodies"],
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--slow-bodies", type=int, default=1250)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    # The server's command line is read from ``manage.py serve``'s module.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    report = measure(args.streams, args.slow_bodies, args.seconds)
    rows = verdicts(report)
    for text, target, ok in rows:
        print(f"{'pass' if ok else 'MISS'}  {text}  (target {target})")
    print("JSON " + json.dumps(report))
    return 0 if all(ok for _, _, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
