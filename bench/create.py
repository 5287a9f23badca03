"""1. Create: ``POST /api/jobs`` under load beside the yardstick's ``POST /jobs``.

The product runs as ``make run`` runs it (granian WSGI with two workers,
plus the worker cluster) with every delay at 300 s, so no job runs during
the load. Integrity: after the run, the job files on disk must match the
2xx answers, give or take the requests still in flight when wrk stopped
(at most one per connection), and each job must have its queue message.
"""

from __future__ import annotations

import time

from bench.load import POST_LUA, LoadResult, wrk
from bench.processes import running, wait_for, wait_http
from bench.profiles import Profile
from bench.report import Section, ratio, verdict
from bench.systems import (
    LONG_DELAY,
    Scratch,
    count_job_files,
    count_yardstick_files,
    product_env,
    start_web,
    start_worker,
    start_yardstick,
)

TARGET_RATIO = 0.30


def _settled(count) -> int:
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


def _product(profile: Profile, connections: int) -> tuple[LoadResult, dict]:
    scratch = Scratch.make(f"create-c{connections}")
    try:
        env = product_env(scratch.data, **LONG_DELAY)
        web, worker = start_web(scratch, env), start_worker(scratch, env)
        with running(worker, web):
            wait_http(web, "/api/health", want=(200, 503))
            if profile.warmup_seconds:
                wrk(
                    web.url + "/api/jobs",
                    POST_LUA,
                    seconds=profile.warmup_seconds,
                    connections=connections,
                )

            def jobs() -> int:
                counts = count_job_files(scratch.data)
                return sum(v for k, v in counts.items() if k != "queue_ready")

            before = _settled(jobs)
            before_ready = count_job_files(scratch.data)["queue_ready"]
            result = wrk(
                web.url + "/api/jobs",
                POST_LUA,
                seconds=profile.create_seconds,
                connections=connections,
            )
            after = _settled(jobs)
            after_ready = count_job_files(scratch.data)["queue_ready"]
        created = after - before
        integrity = {
            "job_files_created": created,
            "answered_2xx": result.ok,
            "queue_messages_created": after_ready - before_ready,
            "ok": 0 <= created - result.ok <= connections and after_ready - before_ready == created,
        }
        return result, integrity
    finally:
        scratch.remove()


def _yardstick(profile: Profile, connections: int) -> tuple[LoadResult, dict]:
    scratch = Scratch.make(f"create-ref-c{connections}")
    try:
        yard = start_yardstick(scratch)
        with running(yard):
            wait_http(yard, "/jobs?page=1&perPage=1")
            if profile.warmup_seconds:
                wrk(
                    yard.url + "/jobs",
                    POST_LUA,
                    seconds=profile.warmup_seconds,
                    connections=connections,
                )

            def files() -> int:
                return count_yardstick_files(scratch.data)

            before = _settled(files)
            result = wrk(
                yard.url + "/jobs",
                POST_LUA,
                seconds=profile.create_seconds,
                connections=connections,
            )
            after = _settled(files)
        created = after - before
        return result, {
            "job_files_created": created,
            "answered_2xx": result.ok,
            "ok": 0 <= created - result.ok <= connections,
        }
    finally:
        scratch.remove()


def measure(profile: Profile) -> Section:
    section = Section("1 create")
    for connections in profile.create_connections:
        product, integrity = _product(profile, connections)
        yardstick, ref_integrity = _yardstick(profile, connections)
        share = ratio(product.rps, yardstick.rps)
        section.data[f"c{connections}"] = {
            "product": product.as_dict(),
            "product_integrity": integrity,
            "yardstick": yardstick.as_dict(),
            "yardstick_integrity": ref_integrity,
            "ratio": share,
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
            target=f"equal (+0..{connections} in flight)",
            verdict=verdict(integrity["ok"]),
        )
    section.notes.append(
        "every product create is fsynced (file + directory, job + queue message); "
        "the yardstick writes without fsync"
    )
    return section
