"""4. Memory: resident memory of the web server and of the worker cluster
with 0 to 100,000 pending jobs stored (job files and queue messages).

Each size gets a fresh directory seeded with ``bench.seed --kind pending``
(all due at least half an hour later, so nothing runs), web and worker
started as ``make run`` starts them. The figures are taken once the
system is healthy, has served a few reads of every kind (including
``/api/stats``, which the page calls) and the worker's memory has stopped
changing (its recovery passes at start have run). RSS is summed over each
process tree from /proc (shared pages counted in every process, as ``ps``
does); PSS (shared pages split between sharers) is in the JSON.
"""

from __future__ import annotations

import time

from bench.datasets import kept
from bench.processes import http_status, running, wait_http
from bench.profiles import Profile
from bench.report import Section, verdict
from bench.systems import (
    LONG_DELAY,
    Scratch,
    product_env,
    seed_product,
    start_web,
    start_worker,
)

GROWTH_LIMIT_MIB = 20.0
MIB = 1024 * 1024


def _exercise(url: str, ids: list[str]) -> None:
    for _ in range(5):
        for path in (
            "/api/jobs?limit=50",
            "/api/jobs?status=pending&limit=50",
            "/api/stats",
            "/api/health",
            *(f"/api/jobs/{job_id}" for job_id in ids[:10]),
        ):
            http_status(url + path, timeout=30)


def _settled_rss(servers, *, minimum: float, limit: float = 40.0) -> list[int]:
    """RSS of each server once no tree changed by more than 1 % over a second."""
    started = time.monotonic()
    previous = [server.rss_bytes() for server in servers]
    while True:
        time.sleep(1.0)
        current = [server.rss_bytes() for server in servers]
        calm = all(abs(a - b) <= 0.01 * max(a, 1) for a, b in zip(previous, current, strict=True))
        elapsed = time.monotonic() - started
        if (calm and elapsed >= minimum) or elapsed >= limit:
            return current
        previous = current


def _size(profile: Profile, size: int) -> dict:
    scratch = Scratch.make(f"memory-{size}")
    keep = False
    try:
        ids: list[str] = []
        seeded = None
        if size:
            seeded = seed_product(scratch, "--kind", "pending", "--count", str(size))
            ids = seeded.pop("sample_ids")
        env = product_env(scratch.data, **LONG_DELAY)
        web, worker = start_web(scratch, env), start_worker(scratch, env)
        with running(worker, web):
            healthy_after = wait_http(web, "/api/health", timeout=180)
            _exercise(web.url, ids)
            web_rss, worker_rss = _settled_rss([web, worker], minimum=profile.memory_settle_seconds)
            result = {
                "jobs": size,
                "seeded": seeded,
                "healthy_after_seconds": round(healthy_after, 2),
                "web_rss_mib": round(web_rss / MIB, 1),
                "worker_rss_mib": round(worker_rss / MIB, 1),
                "web_pss_mib": round(web.pss_bytes() / MIB, 1),
                "worker_pss_mib": round(worker.pss_bytes() / MIB, 1),
                "web_processes": web.memory_by_process(),
                "worker_processes": worker.memory_by_process(),
            }
        keep = size == profile.restart_size
        if keep:
            kept.keep(f"pending-{size}", scratch)
        return result
    finally:
        if not keep:
            scratch.release()


def measure(profile: Profile) -> Section:
    section = Section("4 memory")
    results = {}
    for size in profile.memory_sizes:
        result = results[size] = _size(profile, size)
        section.data[str(size)] = result
        total = result["web_rss_mib"] + result["worker_rss_mib"]
        section.row(
            f"RSS web + worker, {size:,} pending",
            f"{result['web_rss_mib']:.0f} + {result['worker_rss_mib']:.0f} = {total:.0f} MiB",
        )
        per_process = [p["rss_mib"] for p in result["worker_processes"]]
        section.row(
            f"worker RSS per process, {size:,}",
            " ".join(f"{value:.0f}" for value in per_process) + " MiB",
        )
        section.row(
            f"PSS web + worker, {size:,} pending",
            f"{result['web_pss_mib']:.0f} + {result['worker_pss_mib']:.0f} = "
            f"{result['web_pss_mib'] + result['worker_pss_mib']:.0f} MiB",
        )
    sizes = sorted(results)
    if len(sizes) >= 2:
        low, high = results[sizes[0]], results[sizes[-1]]
        growth = (high["web_rss_mib"] + high["worker_rss_mib"]) - (
            low["web_rss_mib"] + low["worker_rss_mib"]
        )
        section.row(
            f"growth {sizes[0]:,} -> {sizes[-1]:,} pending",
            f"{growth:+.1f} MiB (web {high['web_rss_mib'] - low['web_rss_mib']:+.1f}, "
            f"worker {high['worker_rss_mib'] - low['worker_rss_mib']:+.1f})",
            target=f"<= {GROWTH_LIMIT_MIB:.0f} MiB",
            verdict=verdict(growth <= GROWTH_LIMIT_MIB),
        )
    section.notes.append(
        "RSS summed over each process tree (shared pages count in every process): "
        "web = granian + its workers, worker = qcluster main, sentinel, then pusher, "
        "monitor and workers (per process: main first)"
    )
    return section
