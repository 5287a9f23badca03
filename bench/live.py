"""5. Live updates: 500 open event streams, event delay and create throughput.

One web server (as ``make run`` starts it; no worker is needed for creates).
First, create throughput without streams (wrk ``POST /api/jobs``, 16
connections). Then the streams are opened; a few jobs are created one by
one and each one's ``event: job`` is timed at every stream from the job's
``created_at`` (the moment it changed). Last, create throughput again with
the streams open (they read and drop what they get).
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime

from bench.load import POST_LUA, LoadResult, wrk
from bench.processes import running, wait_http
from bench.profiles import Profile
from bench.report import Section, verdict
from bench.sse import EventStreams
from bench.systems import LONG_DELAY, Scratch, product_env, start_web
from bench.timing import percentile

DELAY_P99_SECONDS = 1.0
THROUGHPUT_SHARE = 0.8
CONNECTIONS = 16
PROBE_INTERVAL = 0.25
CREATE_TIMEOUT = 5.0
# Streams connect over about a second, as pages reconnecting after a restart do.
STAGGER_SECONDS = 0.002
OPEN_TIMEOUT = 20.0


def _create(url: str) -> str | None:
    """Create one job; its id, or None when the server did not answer in time."""
    request = urllib.request.Request(
        url + "/api/jobs",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=CREATE_TIMEOUT) as response:
            return json.loads(response.read())["id"]
    except OSError:
        return None


def _threads(server) -> dict[int, int]:
    """Threads per process of the web server's tree (a stream holds one while open)."""
    counts = {}
    for pid in server.tree():
        try:
            with open(f"/proc/{pid}/status") as handle:
                counts[pid] = int(handle.read().split("Threads:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return counts


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure(profile: Profile) -> Section:
    section = Section("5 live")
    scratch = Scratch.make("live")
    streams = None
    try:
        web = start_web(scratch, product_env(scratch.data, **LONG_DELAY))
        with running(web):
            wait_http(web, "/api/health", want=(200, 503))
            if profile.warmup_seconds:
                wrk(
                    web.url + "/api/jobs",
                    POST_LUA,
                    seconds=profile.warmup_seconds,
                    connections=CONNECTIONS,
                )
            without = wrk(
                web.url + "/api/jobs",
                POST_LUA,
                seconds=profile.live_seconds,
                connections=CONNECTIONS,
            )
            threads_before = _threads(web)
            streams = EventStreams(
                "127.0.0.1", web.port, profile.live_streams, stagger=STAGGER_SECONDS
            )
            open_seconds = streams.open(timeout=OPEN_TIMEOUT)
            subscribed = streams.subscribed
            threads_open = _threads(web)
            created, unanswered = [], 0
            for _ in range(profile.live_probe_jobs):
                job_id = _create(web.url)
                if job_id is None:
                    unanswered += 1
                else:
                    created.append(job_id)
                time.sleep(PROBE_INTERVAL)
            wanted = {(job_id, "pending") for job_id in created}

            def delivered() -> int:
                return sum(1 for a in list(streams.arrivals) if (a.job_id, a.status) in wanted)

            expected = len(created) * profile.live_streams
            deadline = time.monotonic() + 15
            while delivered() < expected and time.monotonic() < deadline:
                time.sleep(0.1)
            delays = [
                a.at - _epoch(a.created_at)
                for a in list(streams.arrivals)
                if (a.job_id, a.status) in wanted
            ]
            streams.parse = False
            cpu_before = streams.cpu_seconds()
            bytes_before = streams.received_bytes
            with_streams: LoadResult = wrk(
                web.url + "/api/jobs",
                POST_LUA,
                seconds=profile.live_seconds,
                connections=CONNECTIONS,
                timeout=CREATE_TIMEOUT,
            )
            time.sleep(0.5)
            client_cpu = streams.cpu_seconds() - cpu_before
            streamed = streams.received_bytes - bytes_before
            still_open = streams.subscribed - streams.ended - len(streams.failed)
            streams.close()
            streams = None
    finally:
        if streams is not None:
            streams.close()
        scratch.release()
    share = with_streams.rps / without.rps if without.rps else 0.0
    p50 = percentile(delays, 0.5)
    p99 = percentile(delays, 0.99)
    section.data = {
        "streams": profile.live_streams,
        "subscribed": subscribed,
        "open_seconds": round(open_seconds, 2),
        "web_threads_per_process_before": threads_before,
        "web_threads_per_process_streams_open": threads_open,
        "probe_creates": profile.live_probe_jobs,
        "probe_creates_unanswered": unanswered,
        "probe_create_timeout_seconds": CREATE_TIMEOUT,
        "deliveries_expected": expected,
        "deliveries": len(delays),
        "delay_p50_ms": round(p50 * 1000, 1),
        "delay_p99_ms": round(p99 * 1000, 1),
        "delay_max_ms": round(max(delays) * 1000, 1) if delays else None,
        "create_without_streams": without.as_dict(),
        "create_with_streams": with_streams.as_dict(),
        "throughput_share": round(share, 3),
        "client_cpu_seconds_during_load": round(client_cpu, 2),
        "bytes_streamed_during_load": streamed,
        "streams_open_after_load": still_open,
    }
    section.row(
        "streams subscribed",
        f"{subscribed} of {profile.live_streams} in {open_seconds:.1f} s",
        target="all",
        verdict=verdict(subscribed == profile.live_streams),
    )
    section.row(
        "single creates, streams open",
        f"{len(created)} of {profile.live_probe_jobs} answered within {CREATE_TIMEOUT:.0f} s",
        target="all",
        verdict=verdict(unanswered == 0),
    )
    section.row(
        "event delay p50 / p99",
        f"{p50 * 1000:.0f} / {p99 * 1000:.0f} ms ({len(delays):,}/{expected:,} delivered)",
        target=f"p99 <= {DELAY_P99_SECONDS:.0f} s, all delivered",
        verdict=verdict(p99 <= DELAY_P99_SECONDS and len(delays) >= expected),
    )
    section.row(
        f"POST req/s, {CONNECTIONS} conn, streams open",
        f"{with_streams.rps:,.0f} vs {without.rps:,.0f} without",
        ratio=f"{share:.2f}",
        target=f">= {THROUGHPUT_SHARE} x without",
        verdict=verdict(share >= THROUGHPUT_SHARE),
    )
    section.row(
        "POST p50 / p99 ms, streams open",
        f"{with_streams.p50_ms:.1f} / {with_streams.p99_ms:.1f} "
        f"(without {without.p50_ms:.1f} / {without.p99_ms:.1f})",
    )
    section.row(
        "POST timeouts / errors, streams open",
        f"{with_streams.socket_errors} / {with_streams.non2xx} (without "
        f"{without.socket_errors} / {without.non2xx})",
        target="0 / 0",
        verdict=verdict(with_streams.socket_errors == 0 and with_streams.non2xx == 0),
    )
    section.notes.append(
        f"threads per web process: {sorted(threads_before.values())} before, "
        f"{sorted(threads_open.values())} with the streams open (one per open stream)"
    )
    section.notes.append(
        f"the stream reader (this process) used {client_cpu:.1f} s CPU during the "
        f"{profile.live_seconds:.0f} s load run, reading {streamed / 1e6:,.0f} MB; "
        f"{still_open} streams still open after it"
    )
    return section
