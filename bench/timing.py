"""3. Timing: many jobs due at once, run by the worker against a fake Unsplash.

The worker (``manage.py qcluster``, as ``make run`` starts it) calls the
fake Unsplash of ``tests/fake_unsplash.py`` (100 ms per answer), served from
this process so that its call counter can be read. Once the worker is up,
``bench.seed --kind due`` writes the jobs and their queue messages, all due
a few seconds later (at one instant, or spread over a second). Lateness is
``started_at - run_at`` (when the run began) and ``finished_at - run_at``
(when the photo was in the job file), read from the job files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time

from bench.processes import PROJECT, running, wait_for
from bench.profiles import Profile
from bench.report import Section, verdict
from bench.systems import Scratch, count_job_files, product_env, seed_product, start_worker

LATENESS_P50_MS = 30.0
LATENESS_P99_MS = 250.0
CALLS_PER_JOB = 0.05
UNSPLASH_LATENCY_MS = 100


def fake_unsplash_class():
    path = PROJECT / "tests" / "fake_unsplash.py"
    spec = importlib.util.spec_from_file_location("bench_fake_unsplash", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.FakeUnsplash


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` from 0 to 1)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _from_iso(value: str | None) -> float | None:
    if not value:
        return None
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _documents(data_dir) -> list[dict]:
    documents = []
    for folder, _, names in os.walk(data_dir / "jobs"):
        for name in names:
            if name.endswith(".json"):
                with open(os.path.join(folder, name), "rb") as handle:
                    documents.append(json.load(handle))
    return documents


def _stats(values_ms: list[float]) -> dict:
    return {
        "p50_ms": round(percentile(values_ms, 0.50), 1),
        "p99_ms": round(percentile(values_ms, 0.99), 1),
        "max_ms": round(max(values_ms), 1) if values_ms else None,
        "mean_ms": round(statistics.fmean(values_ms), 1) if values_ms else None,
    }


def _batch(profile: Profile, count: int, spread: float) -> dict:
    scratch = Scratch.make(f"timing-{count}")
    fake = None
    try:
        fake = fake_unsplash_class()(latency_ms=UNSPLASH_LATENCY_MS).start()
        env = product_env(scratch.data, UNSPLASH_ACCESS_KEY="bench", UNSPLASH_API_URL=fake.url)
        worker = start_worker(scratch, env)
        with running(worker):
            heartbeats = scratch.data / "worker"
            wait_for(
                lambda: heartbeats.is_dir() and any(heartbeats.iterdir()),
                timeout=60,
                what="the worker's heartbeat",
            )
            due_at = time.time() + profile.timing_lead_seconds
            seeded = seed_product(
                scratch,
                "--kind",
                "due",
                "--count",
                str(count),
                "--due-at",
                f"{due_at:.3f}",
                "--due-spread",
                str(spread),
            )
            seeded_by = time.time()
            fake.reset()

            def finished() -> bool:
                counts = count_job_files(scratch.data)
                return counts.get("completed", 0) + counts.get("failed", 0) >= count

            wait_for(
                finished,
                timeout=profile.timing_lead_seconds + 60 + count / 5,
                every=0.2,
                what=f"{count} jobs to finish",
            )
            calls = fake.calls
        documents = _documents(scratch.data)
    finally:
        if fake is not None:
            fake.stop()
        scratch.release()
    start_ms, finish_ms = [], []
    for job in documents:
        run_at = _from_iso(job["run_at"])
        started, finished_at = _from_iso(job.get("started_at")), _from_iso(job.get("finished_at"))
        if started is not None:
            start_ms.append((started - run_at) * 1000)
        if finished_at is not None:
            finish_ms.append((finished_at - run_at) * 1000)
    statuses: dict[str, int] = {}
    for job in documents:
        statuses[job["status"]] = statuses.get(job["status"], 0) + 1
    return {
        "jobs": count,
        "spread_seconds": spread,
        "statuses": statuses,
        "seeding_seconds": seeded["seconds"],
        "seeded_before_due": seeded_by < due_at,
        "start_lateness": _stats(start_ms),
        "finish_lateness": _stats(finish_ms),
        "run_span_ms": round(max(finish_ms) - min(start_ms), 1) if finish_ms else None,
        "first_start_late_ms": round(min(start_ms), 1) if start_ms else None,
        "jobs_per_second": (
            round(count / ((max(finish_ms) - min(start_ms)) / 1000), 1)
            if finish_ms and max(finish_ms) > min(start_ms)
            else None
        ),
        "unsplash_calls": calls,
        "unsplash_calls_per_job": round(calls / count, 4),
    }


def measure(profile: Profile) -> Section:
    section = Section("3 timing")
    for count, spread in profile.timing_batches:
        result = _batch(profile, count, spread)
        label = f"{count} due at once" if not spread else f"{count} due within {spread:g} s"
        section.data[label] = result
        gated = not spread
        start, finish = result["start_lateness"], result["finish_lateness"]
        section.row(
            f"{label}: start late p50",
            f"{start['p50_ms']:.0f} ms",
            target=f"<= {LATENESS_P50_MS:.0f} ms" if gated else "",
            verdict=verdict(start["p50_ms"] <= LATENESS_P50_MS) if gated else "",
        )
        section.row(
            f"{label}: start late p99 / max",
            f"{start['p99_ms']:.0f} / {start['max_ms']:.0f} ms",
            target=f"p99 <= {LATENESS_P99_MS:.0f} ms" if gated else "",
            verdict=verdict(start["p99_ms"] <= LATENESS_P99_MS) if gated else "",
        )
        section.row(
            f"{label}: finish late p50/p99/max",
            f"{finish['p50_ms']:.0f} / {finish['p99_ms']:.0f} / {finish['max_ms']:.0f} ms",
        )
        section.row(
            f"{label}: first start late, run rate",
            f"{result['first_start_late_ms']:.0f} ms, {result['jobs_per_second'] or 0:,.0f} jobs/s",
        )
        section.row(
            f"{label}: Unsplash calls per job",
            f"{result['unsplash_calls_per_job']:.3f} ({result['unsplash_calls']} calls)",
            target=f"<= {CALLS_PER_JOB}",
            verdict=verdict(result["unsplash_calls_per_job"] <= CALLS_PER_JOB),
        )
        done = result["statuses"].get("completed", 0)
        section.row(
            f"{label}: completed",
            f"{done} of {count}",
            target="all",
            verdict=verdict(done == count),
        )
        if not result["seeded_before_due"]:
            section.notes.append(f"{label}: seeding ended after the due time; lateness inflated")
    section.notes.append(
        "worker = manage.py qcluster with the project settings; fake Unsplash "
        f"{UNSPLASH_LATENCY_MS} ms per call; lateness = started_at/finished_at - run_at"
    )
    return section
