"""``manage.py jobs``: what an operator does with jobs, one subcommand each.

    jobs list [--status S[,S]] [--limit N] [--cursor ID]
    jobs show ID
    jobs cancel|retry|delete ID [ID ...]
    jobs recover
    jobs prune --older-than 7d [--dry-run]
    jobs health

Every subcommand takes ``--json`` (stdout then carries one JSON document).
Cancel, retry, delete and show go through :mod:`jobs.operations`, as the
admin pages do.
Exit status: 0 success, 2 bad usage or a job that cannot be found or
changed as asked.
"""

from __future__ import annotations

import getpass
import json
import logging
import re
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs import clock, services
from jobs.errors import JobError
from jobs.job_summary import summary
from jobs.model import STATUSES, Job, Status
from jobs.operations import ACTIONS, job_inspect, perform, queue_status
from jobs.recovery import recover_jobs

logger = logging.getLogger(__name__)

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``12h``, ``7d`` or a sum like ``1d12h``."""
    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 12h, 7d or 1d12h.")
    return sum(
        float(amount) * DURATION_UNITS[unit] for amount, unit in _DURATION_PART.findall(value)
    )


class Command(BaseCommand):
    help = (
        "Inspect and manage jobs: list, show, cancel, retry, delete, recover, prune, health. "
        "Run `manage.py jobs <subcommand> --help` for each."
    )

    def add_arguments(self, parser):
        subcommands = parser.add_subparsers(
            dest="subcommand", required=True, metavar="subcommand", title="subcommands"
        )

        listing = subcommands.add_parser("list", help="List jobs, newest first.")
        listing.add_argument(
            "--status",
            help="Only jobs in these states, comma-separated: " + ", ".join(STATUSES) + ".",
        )
        listing.add_argument(
            "--limit",
            default=str(services.DEFAULT_PAGE),
            help=f"Jobs per page, 1 to {services.MAX_PAGE} (default {services.DEFAULT_PAGE}).",
        )
        listing.add_argument("--cursor", help="Continue after this job id (the next page).")

        show = subcommands.add_parser(
            "show", help="Show one job: its timeline, file and queue messages."
        )
        show.add_argument("job_id", metavar="ID")

        for name, action in ACTIONS.items():
            change = subcommands.add_parser(name, help=action.summary)
            change.add_argument("job_ids", nargs="+", metavar="ID")

        subcommands.add_parser(
            "recover",
            help="Run the recovery pass now: re-queue pending jobs without a queue message, "
            "restart runs whose worker died, fail dead-lettered jobs.",
        )

        prune = subcommands.add_parser(
            "prune",
            help="Delete finished jobs (completed, failed, cancelled) that finished before "
            "a given age, with their queue messages, and expired idempotency keys. "
            "Pending and running jobs are never touched.",
        )
        prune.add_argument(
            "--older-than",
            required=True,
            metavar="AGE",
            help="Age of the finished jobs to delete: 30s, 15m, 12h, 7d or a sum like 1d12h.",
        )
        prune.add_argument(
            "--dry-run", action="store_true", help="Only tell what would be deleted."
        )

        subcommands.add_parser(
            "health",
            help="Queue counts, worker heartbeat, photo source and Unsplash rate limit.",
        )

        for subparser in subcommands.choices.values():
            subparser.add_argument(
                "--json", action="store_true", help="Print one JSON document on stdout."
            )

    def handle(self, *args, **options):
        self.as_json = options["json"]
        self.verbosity = options["verbosity"]
        subcommand = options["subcommand"]
        if subcommand in ACTIONS:
            return self.change(subcommand, options["job_ids"])
        getattr(self, f"handle_{subcommand}")(options)

    # -- reading ----------------------------------------------------------------

    def handle_list(self, options: dict[str, Any]) -> None:
        try:
            statuses = services.parse_statuses(options["status"])
            limit = services.parse_limit(options["limit"])
            page = services.job_list(statuses=statuses, cursor=options["cursor"], limit=limit)
        except JobError as error:
            raise CommandError(error.detail, returncode=2) from None
        if self.as_json:
            self.emit(
                {
                    "results": [job.to_public() for job in page.jobs],
                    "next_cursor": page.next_cursor,
                }
            )
            return
        if not page.jobs:
            self.stdout.write("No jobs.")
        else:
            self.stdout.write(f"{'ID':<26}  {'STATUS':<9}  {'CREATED (UTC)':<19}  WHEN")
        for job in page.jobs:
            self.stdout.write(
                f"{job.id:<26}  {job.status:<9}  {_stamp(job.created_at):<19}  {_when(job)}"
            )
        if page.next_cursor:
            self.stdout.write(f"More: manage.py jobs list --cursor {page.next_cursor}")

    def handle_show(self, options: dict[str, Any]) -> None:
        try:
            inspection = job_inspect(options["job_id"])
        except JobError as error:
            raise CommandError(error.detail, returncode=2) from None
        job, path, messages = inspection.job, inspection.path, inspection.messages
        if self.as_json:
            self.emit(
                {
                    "job": job.to_document(),
                    "file": str(path),
                    "queue_messages": [asdict(message) for message in messages],
                }
            )
            return
        write = self.stdout.write
        write(f"Job {job.id}")
        fields = summary(job, show_time=_stamp)
        if job.result:
            fields.append(("Photo", (job.result.get("urls") or {}).get("regular")))
            fields.append(("By", job.result.get("photographer_name")))
        fields.append(("File", path))
        width = max(len(label) for label, _ in fields)
        for label, value in fields:
            write(f"  {label:<{width}}  {value if value not in (None, '') else '-'}")
        write("Timeline (UTC):")
        for item in job.history:
            write(f"  {_stamp(item.at)}  {item.event:<13} {item.detail or ''}")
        write("Queue messages:" if messages else "Queue messages: none")
        for message in messages:
            if message.state == "ready":
                when = f"due at {_stamp(message.due_at)}"
            elif message.state == "leased":
                when = f"leased until {_stamp(message.lease_until)}"
            else:
                when = f"dead since {_stamp(message.dead_at)}"
            write(
                f"  {message.state:<6}  {when}  deliveries {message.deliveries}  "
                f"id {message.message_id}"
            )

    def handle_health(self, options: dict[str, Any]) -> None:
        status = queue_status()
        if self.as_json:
            self.emit(status.as_dict())
            return
        write = self.stdout.write
        write(
            f"Queue: {status.ready} ready ({status.due} due now), {status.leased} leased, "
            f"{status.dead} dead; oldest due message waiting "
            f"{status.oldest_due_lateness_seconds:.1f} s"
        )
        if status.worker_heartbeat_age_seconds is None:
            write("Worker: no heartbeat; start one with `manage.py qcluster`")
        else:
            state = "alive" if status.worker_alive else "not seen recently"
            age = status.worker_heartbeat_age_seconds
            write(f"Worker: {state}, last heartbeat {age:.0f} s ago")
        write(f"Photo source: {status.photo_source}")
        limit = status.rate_limit
        if limit.get("remaining") is not None:
            write(f"Unsplash requests left: {limit['remaining']} of {limit.get('limit') or '?'}")
        if limit.get("blocked"):
            write(f"Unsplash paused for {limit['retry_after']:.0f} s: {limit.get('message')}")

    # -- changing ---------------------------------------------------------------

    def change(self, name: str, job_ids: list[str]) -> None:
        report = perform(name, job_ids, operator=_operator())
        past = report.action.past
        if self.as_json:
            self.emit(
                {
                    name: [job.to_public() for job in report.done],
                    "refused": [
                        {"id": refusal.job_id, "code": refusal.code, "detail": refusal.detail}
                        for refusal in report.refused
                    ],
                }
            )
        else:
            # Refusals go to stderr: stdout lists only the jobs that were changed.
            for job in report.done:
                self.stdout.write(f"{job.id} {past}")
            for refusal in report.refused:
                self.stderr.write(f"{refusal.job_id}: {refusal.detail}")
        if report.refused:
            total = len(report.refused) + len(report.done)
            raise CommandError(f"{len(report.refused)} of {total} job(s) not {past}.", returncode=2)

    def handle_recover(self, options: dict[str, Any]) -> None:
        report = recover_jobs()
        if self.as_json:
            self.emit(asdict(report))
        else:
            self.stdout.write(f"Recovery: {report}")

    def handle_prune(self, options: dict[str, Any]) -> None:
        try:
            age = parse_duration(options["older_than"])
        except ValueError as error:
            raise CommandError(f"--older-than: {error}", returncode=2) from None
        report = services.job_prune(older_than_seconds=age, dry_run=options["dry_run"])
        if not report.dry_run:
            logger.info("%s pruned %d finished jobs", _operator(), len(report.job_ids))
        if self.as_json:
            self.emit({"older_than_seconds": age, **asdict(report)})
            return
        jobs = len(report.job_ids)
        if report.dry_run:
            self.stdout.write(
                f"Dry run: would delete {jobs} finished job(s) older than "
                f"{options['older_than']} and {report.messages_removed} queue message(s), "
                f"and idempotency keys older than {settings.JOBS_IDEMPOTENCY_TTL} s."
            )
        else:
            self.stdout.write(
                f"Deleted {jobs} finished job(s) older than {options['older_than']}, "
                f"{report.messages_removed} queue message(s) and "
                f"{report.idempotency_keys_removed} expired idempotency key(s)."
            )
        if self.verbosity >= 2 or report.dry_run:
            for job_id in report.job_ids:
                self.stdout.write(f"  {job_id}")

    def emit(self, document: Any) -> None:
        self.stdout.write(json.dumps(document, indent=2, default=str))


def _operator() -> str:
    try:
        return f"Operator {getpass.getuser()}"
    except (KeyError, OSError):
        return "Operator (unknown user)"


def _stamp(value: str | float | None) -> str:
    if value is None:
        return "-"
    iso = value if isinstance(value, str) else clock.to_iso(float(value))
    return iso.replace("T", " ").rstrip("Z")[:23]


def _when(job: Job) -> str:
    """The list's last column: when a job is due, started or finished."""
    if job.status is Status.PENDING:
        seconds = job.due_at - clock.now()
        text = f"due in {seconds:.0f} s" if seconds >= 0 else f"due {-seconds:.0f} s ago"
        return text + (f" ({job.pending_reason})" if job.pending_reason else "")
    if job.status is Status.RUNNING:
        return f"started {_stamp(job.started_at)}"
    note = f"{job.status} {_stamp(job.finished_at)}"
    if job.error:
        message = job.error.message
        note += f": {message[:57]}..." if len(message) > 60 else f": {message}"
    return note
