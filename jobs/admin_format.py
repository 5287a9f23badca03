"""How a job shows on the admin pages: list rows, the summary, the timeline, queue messages.

Plain values for the templates of ``admin/jobs/``: times become aware
datetimes (the templates format them), everything else stays as the
:class:`~jobs.model.Job` has it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.urls import reverse
from django.utils.text import capfirst

from jobs import clock, job_summary
from jobs.model import Job, Status
from jobs.operations import Inspection

TIMELINE_LABELS = {
    "created": "Created",
    "started": "Started",
    "completed": "Completed",
    "failed": "Failed",
    "pending": "Will try again",
    "cancelled": "Cancelled",
    "retried": "Retried",
    "lease-expired": "Run lost",
    "requeued": "Requeued",
}


def moment(value: str | float | None) -> datetime | None:
    """An ISO timestamp or epoch seconds as an aware UTC datetime (None stays None)."""
    if value is None:
        return None
    timestamp = clock.from_iso(value) if isinstance(value, str) else float(value)
    return datetime.fromtimestamp(timestamp, tz=UTC)


def seconds_text(seconds: float) -> str:
    """A short relative time: "in 35 s", "in 4 min", "12 s late"."""
    amount = abs(seconds)
    text = f"{amount:.0f} s" if amount < 120 else f"{amount / 60:.0f} min"
    return f"in {text}" if seconds >= 0 else f"{text} late"


def row(job: Job) -> dict[str, Any]:
    """One line of the list page."""
    result = job.result or {}
    thumb = None
    if job.status is Status.COMPLETED:
        thumb = (result.get("urls") or {}).get("thumb")
    return {
        "id": job.id,
        "url": reverse("admin:jobs_job_change", args=[job.id]),
        "status": job.status,
        "created_at": moment(job.created_at),
        "run_at": moment(job.due_at),
        "started_at": moment(job.started_at),
        "finished_at": moment(job.finished_at),
        "attempts": job.attempts,
        "thumb": thumb,
        "alt": result.get("alt_description") or result.get("description") or "photo",
        "note": (job.error.message if job.error else None) or job.pending_reason or "",
        "due_in": seconds_text(job.due_at - clock.now()),
    }


def summary(job: Job) -> list[tuple[str, Any]]:
    """The label and value pairs at the top of the detail page."""
    return job_summary.summary(job, show_time=moment)


def timeline(job: Job) -> list[dict[str, Any]]:
    """The job's history with its due time (and next attempt) placed among it."""
    entries = [
        {
            "at": moment(item.at),
            "event": TIMELINE_LABELS.get(item.event, capfirst(item.event)),
            "kind": item.event,
            "detail": item.detail or "",
        }
        for item in job.history
    ]
    now = clock.now()
    due_times = [("Due", job.run_at)]
    if job.next_attempt_at:
        due_times.append(("Next attempt due", job.next_attempt_at))
    for label, value in due_times:
        future = clock.from_iso(value) > now
        entries.append(
            {
                "at": moment(value),
                "event": label,
                "kind": "due",
                "detail": "scheduled" if future else "",
                "future": future,
            }
        )
    entries.sort(key=lambda entry: (entry["at"] is None, entry["at"] or datetime.min))
    return entries


def queue_messages(inspection: Inspection) -> list[dict[str, Any]]:
    """The job's messages in the queue, with their times as datetimes."""
    return [
        {
            "state": message.state,
            "message_id": message.message_id,
            "deliveries": message.deliveries,
            "due_at": moment(message.due_at),
            "lease_until": moment(message.lease_until),
            "dead_at": moment(message.dead_at),
        }
        for message in inspection.messages
    ]
