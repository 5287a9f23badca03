"""``manage.py createjob``: create jobs from the command line, optionally wait for them.

Jobs are created by ``services.job_create``, so the delay is checked and
refused with the same message as ``POST /api/jobs``. Exit status: 0 when
every job was created (and, with ``--wait``, completed), 1 when a job
failed, was cancelled or deleted, or the wait timed out, 2 on bad usage.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs import clock, health, services
from jobs.errors import JobError, JobNotFound
from jobs.model import STATUSES, Job, Status

MAX_COUNT = 1000
# What the command reports for a job deleted while it waits: it will never finish.
DELETED = "deleted"


@dataclass(frozen=True)
class Followed:
    """A job as the command last saw it; ``job`` is None once it was deleted."""

    id: str
    job: Job | None

    @property
    def status(self) -> str:
        return DELETED if self.job is None else self.job.status

    @property
    def is_final(self) -> bool:
        return self.job is None or self.job.is_final

    def to_public(self) -> dict[str, Any]:
        """What ``--json`` prints: the job as the API shows it, or that it is gone."""
        return {"id": self.id, "status": DELETED} if self.job is None else self.job.to_public()


class Command(BaseCommand):
    help = (
        "Create jobs as POST /api/jobs does. With --wait, follow them to their final state "
        "and print each photo URL. Exit status: 0 success, 1 a job did not complete "
        "(failed, cancelled, deleted, or --timeout reached), 2 bad usage."
    )
    # Seconds between two looks at the jobs while waiting.
    poll_interval = 0.5
    timed_out = False

    def add_arguments(self, parser):
        parser.add_argument(
            "--count",
            type=int,
            default=1,
            metavar="N",
            help=f"How many jobs to create (1 to {MAX_COUNT}; default 1).",
        )
        parser.add_argument(
            "--delay",
            metavar="SECONDS",
            help=(
                "Seconds before each job runs: a multiple of JOBS_DELAY_STEP between "
                "JOBS_MIN_DELAY and JOBS_MAX_DELAY (5 to 300 by 5 unless configured). "
                "Default: random for each job."
            ),
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help=(
                "Wait until every job is finished, showing progress, and print each photo URL. "
                "Needs a running worker (manage.py qcluster, or manage.py serve)."
            ),
        )
        parser.add_argument(
            "--timeout",
            type=float,
            metavar="SECONDS",
            help="With --wait: stop waiting after this many seconds (exit status 1).",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help=(
                "Print only one JSON document on stdout: the list of jobs (their final state "
                "with --wait). Progress and messages go to stderr."
            ),
        )

    def handle(self, *args, **options):
        count = options["count"]
        if not 1 <= count <= MAX_COUNT:
            raise CommandError(f"--count must be between 1 and {MAX_COUNT}.", returncode=2)
        timeout = options["timeout"]
        if timeout is not None and not options["wait"]:
            raise CommandError("--timeout only applies with --wait.", returncode=2)
        if timeout is not None and timeout <= 0:
            raise CommandError("--timeout must be a positive number of seconds.", returncode=2)
        self.as_json = options["json"]
        # With --json, stdout carries the document and nothing else.
        self.out = self.stderr if self.as_json else self.stdout

        jobs = self.create_jobs(count, _delay_argument(options["delay"]))
        if options["wait"]:
            jobs = self.wait_for([job.id for job in jobs], timeout=timeout)
        if self.as_json:
            self.stdout.write(json.dumps([job.to_public() for job in jobs], indent=2))
        if options["wait"]:
            self.check_outcome(jobs)

    # -- creating -------------------------------------------------------------

    def create_jobs(self, count: int, delay: object) -> list[Followed]:
        jobs: list[Followed] = []
        for _ in range(count):
            try:
                created = services.job_create(delay_seconds=delay)
            except JobError as error:
                if jobs:
                    self.note(f"{len(jobs)} job(s) were created before this error.")
                raise CommandError(error.detail, returncode=2) from None
            followed = _current(created.job_id)
            jobs.append(followed)
            if followed.job is None:
                self.note(f"Created job {followed.id} (deleted at once)")
                continue
            job = followed.job
            due_in = max(0, math.ceil(job.due_at - clock.now()))
            self.note(
                f"Created job {job.id} ({job.status}, due in {due_in} s at "
                f"{_time_of_day(job.due_at)} UTC)"
            )
        return jobs

    # -- waiting --------------------------------------------------------------

    def wait_for(self, job_ids: list[str], *, timeout: float | None) -> list[Followed]:
        """Poll the jobs until all are finished (or ``timeout``); return their last state."""
        self.warn_without_worker()
        deadline = None if timeout is None else time.monotonic() + timeout
        live = self.out.isatty()
        reported: set[str] = set()
        last_line = ""
        jobs: list[Followed] = []
        try:
            while True:
                jobs = [_current(job_id) for job_id in job_ids]
                for job in jobs:
                    if job.is_final and job.id not in reported:
                        reported.add(job.id)
                        if live and last_line:
                            self.out.write("\r\033[K", ending="")
                        self.report(job)
                        last_line = ""
                line = _progress_line(jobs, live=live)
                if line != last_line:
                    if live:
                        self.out.write(f"\r\033[K{line}", ending="")
                        self.out.flush()
                    else:
                        self.out.write(line)
                    last_line = line
                if all(job.is_final for job in jobs):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self.timed_out = True
                    break
                self.pause()
        except KeyboardInterrupt:
            if live:
                self.out.write("")
            raise CommandError(
                "Stopped waiting; the jobs go on. Follow them with `manage.py jobs list`.",
                returncode=130,
            ) from None
        if live:
            self.out.write("")
        return jobs

    def pause(self) -> None:
        time.sleep(self.poll_interval)

    def warn_without_worker(self) -> None:
        beat = health.latest_heartbeat()
        age = None if beat is None else clock.now() - float(beat.get("at", 0))
        if age is None or age > settings.JOBS_HEARTBEAT_MAX_AGE:
            self.stderr.write(
                "No worker seems to be running: the jobs will wait until one starts "
                "(manage.py qcluster, or manage.py serve).",
                style_func=self.style.WARNING,
            )

    def report(self, followed: Followed) -> None:
        """One line for a job that reached its final state."""
        job = followed.job
        if job is None:
            self.out.write(f"{followed.id} {DELETED}", style_func=self.style.WARNING)
        elif job.status is Status.COMPLETED:
            result = job.result or {}
            url = (result.get("urls") or {}).get("regular")
            credit = result.get("photographer_name")
            source = " (offline demo illustration)" if result.get("source") == "demo" else ""
            line = f"{job.id} completed: {url}"
            if credit:
                line += f"  photo by {credit}{source}"
            self.out.write(line, style_func=self.style.SUCCESS)
        elif job.status is Status.FAILED:
            message = job.error.message if job.error else "no reason given"
            self.out.write(f"{job.id} failed: {message}", style_func=self.style.ERROR)
        else:
            self.out.write(f"{job.id} {job.status}", style_func=self.style.WARNING)

    def check_outcome(self, jobs: list[Followed]) -> None:
        statuses = Counter(job.status for job in jobs)
        unfinished = sum(1 for job in jobs if not job.is_final)
        if self.timed_out and unfinished:
            raise CommandError(
                f"Timed out: {unfinished} of {len(jobs)} job(s) not finished yet "
                f"({_counts_text(statuses)}).",
                returncode=1,
            )
        completed = statuses[Status.COMPLETED]
        if completed != len(jobs):
            raise CommandError(
                f"{len(jobs) - completed} of {len(jobs)} job(s) did not complete "
                f"({_counts_text(statuses)}).",
                returncode=1,
            )

    def note(self, message: str) -> None:
        self.out.write(message, style_func=lambda text: text)


_ORDER = (*STATUSES, DELETED)


def _delay_argument(value: str | None) -> object:
    """The --delay value for the service, which explains anything wrong with it."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _current(job_id: str) -> Followed:
    try:
        return Followed(job_id, services.job_get(job_id=job_id))
    except JobNotFound:
        return Followed(job_id, None)


def _counts_text(statuses: Counter) -> str:
    return ", ".join(f"{statuses[status]} {status}" for status in _ORDER if statuses[status])


def _progress_line(jobs: list[Followed], *, live: bool) -> str:
    statuses = Counter(job.status for job in jobs)
    line = f"{len(jobs)} job(s): {_counts_text(statuses)}"
    if live:
        # On a terminal the line is redrawn each poll, so a countdown is cheap.
        now = clock.now()
        pending = [f.job for f in jobs if f.job is not None and f.job.status is Status.PENDING]
        waits = [job.due_at - now for job in pending]
        if waits:
            line += f" - next due in {max(0, math.ceil(min(waits)))} s"
    return line


def _time_of_day(moment: float) -> str:
    return clock.to_iso(moment)[11:19]
