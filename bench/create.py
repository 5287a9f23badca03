"""1. Create: ``POST /api/jobs`` under load beside the yardstick's ``POST /jobs``.

The product runs as ``make run`` runs it (granian WSGI with two workers,
plus the worker cluster) with every delay at 300 s, so no job runs during
the load; the yardstick runs with ``JOB_DELAY=300``. Both are started on
their own empty directories; their load runs alternate (``profile.rounds``
each) and the best run of each is reported. Integrity, after every run:
the job files on disk must match the 2xx answers, give or take the
requests still in flight when wrk stopped (at most one per connection),
and each product job must have its queue message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.load import POST_LUA, LoadResult, wrk
from bench.processes import Server, running, wait_for, wait_http
from bench.profiles import Profile
from bench.report import Section, ratio, verdict
from bench.systems import (
    LONG_DELAY,
    Scratch,
    count_job_files,
    count_yardstick_files,
    flush_pending_writes,
    product_env,
    start_web,
    start_worker,
    start_yardstick,
)

# Creates alone, against the yardstick (which never fsyncs): every create here is durable.
TARGET_RATIO = 0.40


def _settled(count: Callable[[], int]) -> int:
    """The count once it stops changing (requests in flight when wrk stopped land)."""
    last = [count()]

    def stable() -> bool:
        time.sleep(0.3)
        now = count()
        same = now == last[0]
        last[0] = now
        return same

    wait_for(stable, timeout=15, what="the job count to settle")
    return last[0]


def _product_counts(data_dir) -> tuple[int, int]:
    counts = count_job_files(data_dir)
    ready = counts.pop("queue_ready")
    return sum(counts.values()), ready


def _run(
    profile: Profile, server: Server, path: str, connections: int, counts: Callable
) -> tuple[LoadResult, dict]:
    _settled(lambda: counts()[0])
    jobs_before, messages_before = counts()
    flush_pending_writes()
    result = wrk(
        server.url + path,
        POST_LUA,
        seconds=profile.create_seconds,
        connections=connections,
        server=server,
    )
    jobs_after = _settled(lambda: counts()[0])
    _, messages_after = counts()
    created = jobs_after - jobs_before
    integrity = {
        "job_files_created": created,
        "answered_2xx": result.ok,
        "ok": 0 <= created - result.ok <= connections,
    }
    if messages_after is not None:
        integrity["queue_messages_created"] = messages_after - messages_before
        integrity["ok"] = integrity["ok"] and messages_after - messages_before == created
    return result, integrity


def _pair(profile: Profile, connections: int) -> dict:
    scratch = Scratch.make(f"create-c{connections}")
    ref_scratch = Scratch.make(f"create-ref-c{connections}")
    try:
        env = product_env(scratch.data, **LONG_DELAY)
        web, worker = start_web(scratch, env), start_worker(scratch, env)
        yard = start_yardstick(ref_scratch)
        rounds: dict[str, list] = {"product": [], "yardstick": []}
        with running(worker, web, yard):
            wait_http(web, "/api/health", want=(200, 503))
            wait_http(yard, "/jobs?page=1&perPage=1")
            systems = {
                "product": (web, "/api/jobs", lambda: _product_counts(scratch.data)),
                "yardstick": (
                    yard,
                    "/jobs",
                    lambda: (count_yardstick_files(ref_scratch.data), None),
                ),
            }
            if profile.warmup_seconds:
                for server, path, _ in systems.values():
                    wrk(
                        server.url + path,
                        POST_LUA,
                        seconds=profile.warmup_seconds,
                        connections=connections,
                    )
            for _ in range(profile.rounds):
                for name, (server, path, counts) in systems.items():
                    rounds[name].append(_run(profile, server, path, connections, counts))
        return rounds
    finally:
        scratch.release()
        ref_scratch.release()


def measure(profile: Profile) -> Section:
    section = Section("1 create")
    for connections in profile.create_connections:
        rounds = _pair(profile, connections)
        product, integrity = max(rounds["product"], key=lambda run: run[0].rps)
        yardstick, ref_integrity = max(rounds["yardstick"], key=lambda run: run[0].rps)
        all_ok = all(check["ok"] for _, check in rounds["product"])
        share = ratio(product.rps, yardstick.rps)
        section.data[f"c{connections}"] = {
            "product": product.as_dict(),
            "product_integrity": integrity,
            "yardstick": yardstick.as_dict(),
            "yardstick_integrity": ref_integrity,
            "ratio": share,
            "rounds": {
                name: [{"load": run.as_dict(), "integrity": check} for run, check in runs]
                for name, runs in rounds.items()
            },
        }
        gated = connections == 16
        section.row(
            f"POST req/s, {connections} conn",
            product.rps,
            yardstick=f"{yardstick.rps:,.0f}",
            ratio=f"{share:.2f}" if share else "-",
            target=f">= {TARGET_RATIO:.2f} x ref" if gated else "",
            verdict=verdict(share is not None and share >= TARGET_RATIO) if gated else "",
        )
        section.row(
            f"POST p50 / p99 ms, {connections} conn",
            f"{product.p50_ms:.1f} / {product.p99_ms:.1f}",
            yardstick=f"{yardstick.p50_ms:.1f} / {yardstick.p99_ms:.1f}",
        )
        section.row(
            f"server CPU ms per POST, {connections} conn",
            f"{product.server_cpu_ms_per_request:.2f}",
            yardstick=f"{yardstick.server_cpu_ms_per_request:.2f}",
        )
        section.row(
            f"non-2xx / socket errors, {connections} conn",
            f"{product.non2xx} / {product.socket_errors}",
            yardstick=f"{yardstick.non2xx} / {yardstick.socket_errors}",
            target="0 / 0",
            verdict=verdict(product.non2xx == 0 and product.socket_errors == 0),
        )
        section.row(
            f"files on disk vs 2xx, {connections} conn",
            f"{integrity['job_files_created']:,} vs {integrity['answered_2xx']:,}"
            f" ({integrity['queue_messages_created']:,} msgs)",
            yardstick=(
                f"{ref_integrity['job_files_created']:,} vs {ref_integrity['answered_2xx']:,}"
            ),
            target=f"equal (+0..{connections} in flight), every run",
            verdict=verdict(all_ok),
        )
    section.notes.append(
        "the product makes each create durable (fsync) before answering; the yardstick "
        f"never fsyncs; best of {profile.rounds} alternating run(s) of "
        f"{profile.create_seconds:.0f} s each"
    )
    return section
