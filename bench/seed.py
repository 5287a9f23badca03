"""Fill a data directory with stored jobs, fast, as a measurement's starting point.

Run with the project's settings and ``JOBS_DATA_DIR`` pointing at the
directory to fill::

    python -m bench.seed --kind mixed --count 10000

Jobs are written through :class:`filestore.repository.JobRepository` and
their queue messages through the broker (``jobs.queueing.enqueue_job``),
so the files are exactly what the product writes, with fsync turned off in
this process: a seeded directory is the start of a benchmark, not data that
must survive a power cut, and 100,000 durable creates would take minutes.

Kinds of data set:

- ``mixed``: a store that has run for a while, one job every ``--spacing``
  seconds up to now. Jobs younger than the longest delay (300 s) are
  pending with a queue message; older ones are completed (85 %), failed
  (10 %) or cancelled (5 %).
- ``pending``: ``--count`` pending jobs created over the last 300 s, all due
  ``--due-in`` to ``--due-in`` + 300 seconds from now (so none comes due
  during the measurement), each with its queue message.
- ``due``: ``--count`` pending jobs due from ``--due-at`` (epoch seconds)
  over ``--due-spread`` seconds, each with its queue message.

Prints one JSON line: the count per status, a random sample of ids, the id
in the middle of the newest-first order (a cursor for a deep page) and the
seconds the seeding took.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

MAX_DELAY = 300
SAMPLE_IDS = 1000
FINAL_WEIGHTS = (("completed", 0.85), ("failed", 0.10), ("cancelled", 0.05))


def _no_fsync(fd: int) -> None:
    return None


def _setup_django() -> None:
    os.fsync = _no_fsync  # see the module docstring
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    import django

    django.setup()


def _finished(job, status: str, photo: dict, rng: random.Random):
    """``job`` taken to ``status`` through the same transitions the worker and staff use."""
    from jobs.model import Failure

    if status == "cancelled":
        return job.cancel(now=job.due_at - 1)
    started = job.due_at + rng.uniform(0.005, 0.05)
    finished = started + rng.uniform(0.05, 0.4)
    running = job.claim(token="seed", lease_seconds=90, now=started)
    if status == "completed":
        return running.complete(photo, now=finished)
    failure = Failure(
        "unsplash_unauthorized",
        "Unsplash refused the access key (401); check UNSPLASH_ACCESS_KEY.",
    )
    return running.fail(failure, now=finished)


def _plan(args: argparse.Namespace, now: float, rng: random.Random):
    """(created_at, run_at, status) per job, oldest first."""
    if args.kind == "mixed":
        for index in range(args.count):
            created = now - (args.count - index) * args.spacing
            delay = rng.randrange(5, MAX_DELAY + 1, 5)
            young = now - created < MAX_DELAY
            status = "pending" if young else _weighted(rng)
            yield created, created + delay, status
    elif args.kind == "pending":
        for index in range(args.count):
            created = now - MAX_DELAY + index * MAX_DELAY / max(1, args.count)
            yield created, now + args.due_in + rng.uniform(0, MAX_DELAY), "pending"
    else:  # due
        for index in range(args.count):
            due = args.due_at + index * args.due_spread / max(1, args.count)
            yield now, due, "pending"


def _weighted(rng: random.Random) -> str:
    pick = rng.random()
    for status, weight in FINAL_WEIGHTS:
        if pick < weight:
            return status
        pick -= weight
    return FINAL_WEIGHTS[0][0]


def seed(args: argparse.Namespace) -> dict:
    _setup_django()
    from filestore.ids import new_id
    from jobs import clock, store
    from jobs.model import Job
    from jobs.photos import BATCH_SIZE, DemoSource
    from jobs.queueing import enqueue_job

    started = time.perf_counter()
    rng = random.Random(args.seed)
    repository = store.repository()
    broker = store.broker()
    photos = list(DemoSource(app_name="food_jobs").fetch_batch(BATCH_SIZE))
    now = time.time()
    ids: list[str] = []
    counts: dict[str, int] = {}
    for created, run_at, status in _plan(args, now, rng):
        job_id = new_id(created)
        delay = max(0, round(run_at - created))
        job = dataclasses.replace(
            Job.new(job_id, delay=delay, now=created), run_at=clock.to_iso(run_at)
        )
        if status != "pending":
            job = _finished(job, status, dict(rng.choice(photos)), rng)
        repository.create(job)
        if status == "pending":
            enqueue_job(job_id, due_at=run_at, broker=broker)
        ids.append(job_id)
        counts[status] = counts.get(status, 0) + 1
    newest_first = ids[::-1]
    return {
        "count": len(ids),
        "statuses": counts,
        "sample_ids": rng.sample(ids, min(SAMPLE_IDS, len(ids))),
        "middle_id": newest_first[len(ids) // 2] if ids else None,
        "seconds": round(time.perf_counter() - started, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("mixed", "pending", "due"), required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--spacing", type=float, default=1.0, help="mixed: seconds between jobs")
    parser.add_argument("--due-in", type=float, default=1800.0, help="pending: earliest due (s)")
    parser.add_argument("--due-at", type=float, default=0.0, help="due: epoch seconds")
    parser.add_argument("--due-spread", type=float, default=0.0, help="due: seconds")
    parser.add_argument("--seed", type=int, default=1)
    print(json.dumps(seed(parser.parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
