"""6. Restart: from starting ``manage.py serve`` on a directory holding
100,000 jobs to its first ``200`` from ``GET /api/health``.

Health needs the web server up, the broker reachable and a fresh worker
heartbeat, so the time includes the worker's start and its recovery pass.
Two directories: the read measurement's store (one job a second, mostly
finished) and the memory measurement's (all pending, with messages). Each
was started once before, so this is a restart with a warm page cache.
"""

from __future__ import annotations

import time

from bench.datasets import kept
from bench.processes import PYTHON, http_status, running
from bench.profiles import Profile
from bench.report import Section, verdict
from bench.systems import LONG_DELAY, Scratch, product_env, seed_product, start_serve

LIMIT_SECONDS = 3.0


def _dataset(kind: str, size: int) -> Scratch:
    name = f"{kind}-{size}"
    scratch = kept.get(name)
    if scratch is None:
        scratch = Scratch.make(f"restart-{name}")
        seed_product(scratch, "--kind", kind, "--count", str(size))
        kept.keep(name, scratch)
    return scratch


def _restart(scratch: Scratch) -> dict:
    env = product_env(scratch.data, **LONG_DELAY)
    started = time.monotonic()
    serve = start_serve(scratch, env)
    first_answer = None
    healthy = None
    with running(serve):
        deadline = started + 120
        while time.monotonic() < deadline and serve.alive():
            status = http_status(serve.url + "/api/health", timeout=5)
            now = time.monotonic() - started
            if status and first_answer is None:
                first_answer = now
            if status == 200:
                healthy = now
                break
            time.sleep(0.02)
        if healthy is None:
            raise RuntimeError(f"no healthy answer within 120 s:\n{serve.log_tail()}")
    return {
        "first_answer_seconds": round(first_answer, 2),
        "healthy_seconds": round(healthy, 2),
        "command": f"{PYTHON} manage.py serve",
    }


def measure(profile: Profile) -> Section:
    section = Section("6 restart")
    size = profile.restart_size
    for kind, label in (("mixed", "mostly finished"), ("pending", "all pending")):
        scratch = _dataset(kind, size)
        try:
            result = _restart(scratch)
        finally:
            kept.release(f"{kind}-{size}")
        section.data[kind] = result
        section.row(
            f"serve -> health 200, {size:,} {label}",
            f"{result['healthy_seconds']:.2f} s "
            f"(web answers at {result['first_answer_seconds']:.2f} s)",
            target=f"<= {LIMIT_SECONDS:.0f} s",
            verdict=verdict(result["healthy_seconds"] <= LIMIT_SECONDS),
        )
    return section
